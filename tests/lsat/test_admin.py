"""lsat/core/admin.py: the one admin-token policy (refused when unset, 401 / 403, hmac)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from lsat.core.admin import AdminDenied, check_admin, check_bearer


@pytest.mark.parametrize(
    ("expected", "given", "status"),
    [
        (None, None, 403),  # disabled, never open
        (None, "anything", 403),
        ("", "", 403),
        ("s3cret", None, 401),
        ("s3cret", "", 401),
        ("s3cret", "s3cre", 403),
        ("s3cret", "s3cret ", 403),
        ("s3cret", "S3CRET", 403),
        ("s3cret", "s3cret", None),
        (SecretStr("s3cret"), "s3cret", None),
        (SecretStr("s3cret"), "guess", 403),
        (SecretStr(""), "", 403),
    ],
)
def test_one_policy(
    expected: SecretStr | str | None, given: str | None, status: int | None
) -> None:
    if status is None:
        check_admin(expected, given, "promote")
        return
    with pytest.raises(AdminDenied) as denied:
        check_admin(expected, given, "promote")
    assert denied.value.status == status
    assert str(denied.value).startswith("promote")
    assert "s3cret" not in str(denied.value)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("Bearer s3cret", None),
        ("Bearer  s3cret ", None),
        ("bearer s3cret", 401),
        ("Basic s3cret", 401),
        ("Bearer ", 401),
        (None, 401),
        ("Bearer wrong", 403),
    ],
)
def test_bearer_header(header: str | None, status: int | None) -> None:
    if status is None:
        check_bearer(SecretStr("s3cret"), header)
        return
    with pytest.raises(AdminDenied) as denied:
        check_bearer(SecretStr("s3cret"), header)
    assert denied.value.status == status
