"""Errors of the adapter registry: each carries a stable ``code`` and the key it is about.

::

    RegistryError                     code "registry_error"   (root of this subsystem)
    ├── InvalidRegistryValue          code "invalid_value"    (also a ValueError)
    ├── AdapterVersionNotFound        code "adapter_version_not_found"
    ├── AliasNotFound                 code "alias_not_found"
    ├── AliasUnchanged                code "alias_unchanged"
    ├── NoPreviousTarget              code "no_previous_target"
    ├── VersionRejected               code "version_rejected"
    ├── AdapterVersionInUse           code "adapter_version_in_use"
    └── VersionAllocationFailed       code "version_allocation_failed"

>>> err = AdapterVersionNotFound(kind="short", version=7)
>>> err.code, err.key, str(err)
('adapter_version_not_found', {'kind': 'short', 'version': 7}, 'no adapter version short/v7')
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AdapterVersionInUse",
    "AdapterVersionNotFound",
    "AliasNotFound",
    "AliasUnchanged",
    "InvalidRegistryValue",
    "NoPreviousTarget",
    "RegistryError",
    "VersionAllocationFailed",
    "VersionRejected",
]


class RegistryError(Exception):
    """Root of the registry's errors; ``code`` is stable, ``key`` names what it is about."""

    code: ClassVar[str] = "registry_error"

    def __init__(self, message: str, **key: Any) -> None:
        super().__init__(message)
        self.key: dict[str, Any] = key


class InvalidRegistryValue(RegistryError, ValueError):
    """An argument was rejected before anything was written."""

    code = "invalid_value"

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {field}={value!r}: {reason}", field=field, value=value)


class AdapterVersionNotFound(RegistryError):
    """No row for this (kind, version)."""

    code = "adapter_version_not_found"

    def __init__(self, *, kind: str, version: int) -> None:
        super().__init__(f"no adapter version {kind}/v{version}", kind=kind, version=version)


class AliasNotFound(RegistryError):
    """The alias was never set."""

    code = "alias_not_found"

    def __init__(self, *, alias: str) -> None:
        super().__init__(f"no alias {alias!r}", alias=alias)


class AliasUnchanged(RegistryError):
    """The alias already points at this version: nothing was recorded."""

    code = "alias_unchanged"

    def __init__(self, *, alias: str, kind: str, version: int) -> None:
        super().__init__(
            f"alias {alias!r} already points at {kind}/v{version}",
            alias=alias,
            kind=kind,
            version=version,
        )


class NoPreviousTarget(RegistryError):
    """A rollback was asked for but the alias has no earlier target left."""

    code = "no_previous_target"

    def __init__(self, *, alias: str) -> None:
        super().__init__(f"alias {alias!r} has no previous target to roll back to", alias=alias)


class VersionRejected(RegistryError):
    """A rejected version cannot be served (promoted or rolled back to)."""

    code = "version_rejected"

    def __init__(self, *, kind: str, version: int, reason: str | None) -> None:
        super().__init__(
            f"adapter version {kind}/v{version} was rejected ({reason or 'no reason given'})",
            kind=kind,
            version=version,
            reason=reason,
        )


class AdapterVersionInUse(RegistryError):
    """The version is the target of aliases, so it cannot be rejected or archived."""

    code = "adapter_version_in_use"

    def __init__(self, *, kind: str, version: int, aliases: tuple[str, ...]) -> None:
        super().__init__(
            f"adapter version {kind}/v{version} is the target of {', '.join(aliases)}",
            kind=kind,
            version=version,
            aliases=aliases,
        )


class VersionAllocationFailed(RegistryError):
    """Every attempt to allocate the next version number clashed with another writer."""

    code = "version_allocation_failed"

    def __init__(self, *, kind: str, attempts: int) -> None:
        super().__init__(
            f"could not allocate a version number for kind {kind!r} after {attempts} attempts "
            "(too many concurrent registrations)",
            kind=kind,
            attempts=attempts,
        )
