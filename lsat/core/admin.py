"""The one admin-token check, used by every admin action: the scorer's admin routes, the
worker's close-window endpoint and the CLI's promote / rollback.

Policy: without a configured token admin actions are disabled (403), never open; no token
presented is 401; a wrong one 403. Tokens are compared with :func:`hmac.compare_digest`, which
takes the same time wherever the strings differ.

>>> check_admin(SecretStr("s3cret"), "s3cret")
>>> check_bearer("s3cret", "Bearer s3cret")
>>> check_bearer("s3cret", None)
Traceback (most recent call last):
...
lsat.core.admin.AdminDenied: admin action needs a token ("Authorization: Bearer <token>")
>>> for expected, given in [(None, "s3cret"), ("s3cret", "guess")]:
...     try:
...         check_admin(expected, given, "promote")
...     except AdminDenied as denied:
...         print(denied.status, denied)
403 promote is disabled: no admin token is configured (set LSAT_ADMIN_TOKEN)
403 promote: admin token rejected
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr

__all__ = ["AdminDenied", "bearer_token", "check_admin", "check_bearer"]

BEARER = "Bearer "


class AdminDenied(Exception):
    """An admin action refused: ``status`` 401 (no token given) or 403 (wrong, or disabled)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def check_admin(
    expected: SecretStr | str | None, given: str | None, action: str = "admin action"
) -> None:
    """Return when ``given`` is the configured token ``expected``; else raise AdminDenied."""
    secret = expected.get_secret_value() if isinstance(expected, SecretStr) else expected
    if not secret:
        raise AdminDenied(
            f"{action} is disabled: no admin token is configured (set LSAT_ADMIN_TOKEN)", 403
        )
    if not given:
        raise AdminDenied(f'{action} needs a token ("Authorization: Bearer <token>")', 401)
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise AdminDenied(f"{action}: admin token rejected", 403)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (``None`` if there is none).

    >>> bearer_token("Bearer abc "), bearer_token("Basic abc"), bearer_token(None)
    ('abc', None, None)
    """
    if not authorization or not authorization.startswith(BEARER):
        return None
    return authorization[len(BEARER) :].strip() or None


def check_bearer(
    expected: SecretStr | str | None, authorization: str | None, action: str = "admin action"
) -> None:
    """:func:`check_admin` on the token of an ``Authorization`` header."""
    check_admin(expected, bearer_token(authorization), action)
