"""Plain, frozen records the registry hands out (ORM rows never leave the store).

>>> key = AdapterKey("merged", 3)
>>> str(key), AdapterKey.parse("merged/v3") == key
('merged/v3', True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "ADAPTER_STATUSES",
    "AdapterKey",
    "AdapterVersion",
    "AliasChange",
    "Evaluation",
    "WindowId",
    "served_stack",
]

ADAPTER_STATUSES: tuple[str, ...] = ("candidate", "rejected", "archived")
"""Lifecycle of a version; what *serves* is never a status but an alias (see AliasChange)."""

WindowId = str | int
"""A training/evaluation window id as the stream names it."""

_KEY_PATTERN = re.compile(r"^(?P<kind>[a-z]+)/v?(?P<version>\d+)$")


@dataclass(frozen=True, slots=True, order=True)
class AdapterKey:
    """The identity of a version: ``(kind, version)``, version counted per kind from 1."""

    kind: str
    version: int

    def __str__(self) -> str:
        return f"{self.kind}/v{self.version}"

    @classmethod
    def parse(cls, text: str) -> AdapterKey:
        """Read ``"short/v3"`` or ``"short/3"``.

        >>> AdapterKey.parse("short/3")
        AdapterKey(kind='short', version=3)
        """
        match = _KEY_PATTERN.match(text.strip())
        if not match:
            raise ValueError(f"not an adapter key (expected KIND/vN, e.g. short/v3): {text!r}")
        return cls(match["kind"], int(match["version"]))


@dataclass(frozen=True, slots=True)
class AdapterVersion:
    """One registered adapter artifact and what is known about it."""

    kind: str
    version: int
    path: str
    sha256: str
    status: str
    created_at: datetime
    status_reason: str | None = None
    trigger: str | None = None
    window_ids: tuple[WindowId, ...] = ()
    parents: tuple[AdapterKey, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    uri: str | None = None
    """The artifact store's URI (``None``: the folder at ``path``, as before URIs existed)."""

    @property
    def key(self) -> AdapterKey:
        """``(kind, version)`` as one value."""
        return AdapterKey(self.kind, self.version)

    @property
    def location(self) -> str:
        """Where to fetch it from: ``uri``, else ``path`` (a plain path reads as ``file``)."""
        return self.uri or self.path


@dataclass(frozen=True, slots=True)
class AliasChange:
    """One append-only record of an alias moving: who, why, when, from where to where."""

    id: int
    alias: str
    action: Literal["set", "rollback"]
    target: AdapterKey
    previous: AdapterKey | None
    actor: str
    reason: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Test-then-train metrics of one adapter version on one window (scored before training)."""

    kind: str
    version: int
    window_id: str
    auc: float | None
    logloss: float | None
    n: int
    recorded_at: datetime


def served_stack(history: Iterable[tuple[str, AdapterKey]]) -> list[AdapterKey]:
    """Replay an alias's log of ``(action, target)``: ``set`` pushes, ``rollback`` pops.

    The top is what the alias serves; a rollback restores the entry below it, so rolling back
    twice goes two steps back, and a ``set`` after a rollback starts a new branch.

    >>> v = [AdapterKey("short", n) for n in range(4)]
    >>> served_stack([("set", v[1]), ("set", v[2]), ("set", v[3]), ("rollback", v[2])])
    [AdapterKey(kind='short', version=1), AdapterKey(kind='short', version=2)]
    """
    stack: list[AdapterKey] = []
    for action, target in history:
        if action == "rollback":
            if len(stack) < 2 or stack[-2] != target:
                raise ValueError(f"inconsistent alias log: rollback to {target} after {stack}")
            stack.pop()
        else:
            stack.append(target)
    return stack
