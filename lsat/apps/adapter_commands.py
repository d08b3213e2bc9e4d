"""``lsat adapters``: inspect the adapter registry, promote a version, roll an alias back.

Examples::

    lsat adapters list --kind short --status candidate
    lsat adapters show short 7          # one version: metadata, aliases, evaluations
    lsat adapters show serving-short    # what an alias serves, and its history
    lsat adapters promote short 7 --reason "AUC 0.74 on window 31" [--alias serving-short]
    lsat adapters rollback serving-short --reason "regression on window 32"

``promote`` and ``rollback`` are admin actions: the token given (``--token``, else
``LSAT_CLIENT_TOKEN``, else ``LSAT_ADMIN_TOKEN``) must match ``LSAT_ADMIN_TOKEN``; refused when no
admin token is configured.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsat.core.admin import AdminDenied, check_admin
from lsat.core.kinds import ADAPTER_KINDS
from lsat.core.settings import Settings

if TYPE_CHECKING:  # keep ``lsat --help`` fast: SQLAlchemy/alembic load only when used
    from _typeshed import DataclassInstance

    from lsat.adapters.lifecycle.registry import (
        AdapterVersion,
        AliasChange,
        Evaluation,
        RegistryStore,
    )

__all__ = ["check_admin_token", "register"]

Command = Callable[[argparse.Namespace, Settings], int]
ADMIN_DENIED_CODE = "admin_token_invalid"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lsat adapters list|show|promote|rollback``."""
    parser = subparsers.add_parser(
        "adapters",
        help="adapter registry: list, show, promote, rollback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="adapters_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="registered versions, newest first")
    listing.add_argument("--kind", choices=ADAPTER_KINDS)
    listing.add_argument("--status", choices=("candidate", "rejected", "archived"))
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_guarded(_list))

    show = commands.add_parser("show", help="one version (KIND VERSION) or an alias (ALIAS)")
    show.add_argument("target", nargs="+", metavar="KIND VERSION | ALIAS")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_guarded(_show))

    promote = commands.add_parser("promote", help="point an alias at a version (admin)")
    promote.add_argument("kind", choices=ADAPTER_KINDS)
    promote.add_argument("version", type=int)
    promote.add_argument("--alias", help="default: serving-KIND")
    _add_admin_arguments(promote)
    promote.set_defaults(func=_guarded(_promote))

    rollback = commands.add_parser("rollback", help="restore an alias's previous target (admin)")
    rollback.add_argument("alias")
    _add_admin_arguments(rollback)
    rollback.set_defaults(func=_guarded(_rollback))


def _add_admin_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", required=True, help="why (kept in the alias history)")
    parser.add_argument("--actor", default=None, help="who (default: cli:<login name>)")
    parser.add_argument(
        "--token", default=None, help="admin token (default: LSAT_CLIENT_TOKEN, LSAT_ADMIN_TOKEN)"
    )


def check_admin_token(settings: Settings, given: str | None, action: str) -> None:
    """Allow ``action`` only when ``given`` is the configured admin token (the project's one
    check, :func:`lsat.core.admin.check_admin`: refused when no token is configured).

    >>> check_admin_token(Settings(admin_token="s3cret"), "s3cret", "promote")
    >>> check_admin_token(Settings(admin_token="s3cret"), "guess", "promote")
    Traceback (most recent call last):
    ...
    lsat.core.admin.AdminDenied: promote: admin token rejected
    """
    check_admin(settings.admin_token, given, action)


def _guarded(command: Command) -> Command:
    """Run ``command``; registry errors and refused admin actions become one line on stderr
    and exit status 1."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from lsat.adapters.lifecycle.registry import RegistryError

        try:
            return command(args, settings)
        except (RegistryError, AdminDenied) as exc:
            code = exc.code if isinstance(exc, RegistryError) else ADMIN_DENIED_CODE
            print(f"error [{code}]: {exc}", file=sys.stderr)
            return 1

    return run


def _open(settings: Settings) -> RegistryStore:
    from lsat.adapters.lifecycle.registry import open_registry

    return open_registry(settings.db_url)


def _default_actor() -> str:
    try:
        import os
        import pwd

        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except (ImportError, KeyError):  # pragma: no cover - non-POSIX or unnamed uid
        return "cli"


# --- commands -----------------------------------------------------------------------------


def _list(args: argparse.Namespace, settings: Settings) -> int:
    with _open(settings) as registry:
        versions = registry.list(kind=args.kind, status=args.status, limit=args.limit)
        pointers = registry.aliases()
    if args.json:
        _print_json([_version_json(v, pointers) for v in versions])
        return 0
    from rich.table import Table

    table = Table(title=f"adapter versions ({len(versions)})")
    for column in ("key", "status", "aliases", "trigger", "windows", "val AUC", "created"):
        table.add_column(
            column, no_wrap=column in ("key", "status", "val AUC", "created"), overflow="fold"
        )
    for v in versions:
        table.add_row(
            str(v.key),
            v.status,
            ", ".join(_aliases_of(v, pointers)),
            v.trigger or "",
            ", ".join(map(str, v.window_ids)),
            _headline_metric(v.metrics),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    _console().print(table)
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    from lsat.adapters.lifecycle.registry import AliasNotFound, InvalidRegistryValue

    target: list[str] = args.target
    if len(target) > 2:
        raise InvalidRegistryValue("target", " ".join(target), "expected KIND VERSION or ALIAS")
    with _open(settings) as registry:
        history: list[AliasChange] = []
        if len(target) == 2:
            kind, version_text = target
            if not version_text.removeprefix("v").isdigit():
                raise InvalidRegistryValue("version", version_text, "expected an integer")
            version = registry.get(kind, int(version_text.removeprefix("v")))
        else:
            resolved = registry.resolve(target[0])
            if resolved is None:
                raise AliasNotFound(alias=target[0])
            version, history = resolved, registry.alias_history(target[0])
        pointers = registry.aliases()
        evaluations = registry.evaluations(kind=version.kind, version=version.version)
    if args.json:
        payload = _version_json(version, pointers)
        payload["evaluations"] = [_plain(e) for e in evaluations]
        if history:
            payload["alias_history"] = [_change_json(c) for c in history]
        _print_json(payload)
        return 0
    _print_version(version, pointers, evaluations, history, alias=target[0] if history else None)
    return 0


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    check_admin_token(settings, args.token or settings.presented_token, "promote")
    alias = args.alias or f"serving-{args.kind}"
    with _open(settings) as registry:
        change = registry.set_alias(
            alias, args.kind, args.version, reason=args.reason, actor=args.actor or _default_actor()
        )
    before = str(change.previous) if change.previous else "nothing"
    _console().print(f"[bold]{alias}[/] → [green]{change.target}[/] (was {before})")
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    check_admin_token(settings, args.token or settings.presented_token, "rollback")
    with _open(settings) as registry:
        restored = registry.rollback(
            args.alias, reason=args.reason, actor=args.actor or _default_actor()
        )
        was = registry.alias_history(args.alias)[-1].previous
    _console().print(f"[bold]{args.alias}[/] rolled back → [green]{restored.key}[/] (was {was})")
    return 0


# --- rendering ----------------------------------------------------------------------------


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False, highlight=False)


def _print_json(payload: object) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True, default=str))


def _plain(record: DataclassInstance) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _aliases_of(version: AdapterVersion, pointers: dict[str, Any]) -> list[str]:
    return sorted(alias for alias, key in pointers.items() if key == version.key)


def _version_json(version: AdapterVersion, pointers: dict[str, Any]) -> dict[str, Any]:
    payload = _plain(version)
    payload["parents"] = [str(parent) for parent in version.parents]
    payload["window_ids"] = list(version.window_ids)
    payload["metrics"] = dict(version.metrics)
    payload["aliases"] = _aliases_of(version, pointers)
    return payload


def _change_json(change: AliasChange) -> dict[str, Any]:
    payload = _plain(change)
    payload["target"] = str(change.target)
    payload["previous"] = str(change.previous) if change.previous else None
    return payload


def _headline_metric(metrics: Any) -> str:
    for name in ("val_auc", "validation_auc", "auc"):
        value = metrics.get(name)
        if isinstance(value, int | float):
            return f"{value:.4f}"
    return ""


def _print_version(
    version: AdapterVersion,
    pointers: dict[str, Any],
    evaluations: list[Evaluation],
    history: list[AliasChange],
    alias: str | None,
) -> None:
    from rich.table import Table

    console = _console()
    title = f"{alias} → {version.key}" if alias else str(version.key)
    details = Table(title=title, show_header=False)
    details.add_column("field", style="bold")
    details.add_column("value", overflow="fold")
    rows = {
        "status": version.status + (f" ({version.status_reason})" if version.status_reason else ""),
        "aliases": ", ".join(_aliases_of(version, pointers)) or "-",
        "trigger": version.trigger or "-",
        "windows": ", ".join(map(str, version.window_ids)) or "-",
        "parents": ", ".join(map(str, version.parents)) or "-",
        "created": version.created_at.isoformat(timespec="seconds"),
        "sha256": version.sha256,
        "path": version.path,
        "metrics": json.dumps(dict(version.metrics), sort_keys=True),
    }
    for field, value in rows.items():
        details.add_row(field, value)
    console.print(details)
    if evaluations:
        table = Table(title="evaluations (test-then-train)")
        for column in ("window", "AUC", "logloss", "n", "recorded"):
            table.add_column(column)
        for e in evaluations:
            table.add_row(
                e.window_id,
                "-" if e.auc is None else f"{e.auc:.4f}",
                "-" if e.logloss is None else f"{e.logloss:.4f}",
                str(e.n),
                e.recorded_at.isoformat(timespec="seconds"),
            )
        console.print(table)
    if history:
        table = Table(title=f"history of {alias}")
        for column in ("when", "action", "target", "previous", "actor", "reason"):
            table.add_column(column, overflow="fold")
        for c in history:
            table.add_row(
                c.changed_at.isoformat(timespec="seconds"),
                c.action,
                str(c.target),
                str(c.previous) if c.previous else "-",
                c.actor,
                c.reason,
            )
        console.print(table)
