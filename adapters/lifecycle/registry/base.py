"""The registry contract: what the trainer, the scorer and the CLI may call.

:class:`RegistryStore` is an ``abc.ABC``: a store that misses a method cannot be built.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from lsat.adapters.lifecycle.registry.entities import (
    AdapterKey,
    AdapterVersion,
    AliasChange,
    Evaluation,
    WindowId,
)
from lsat.adapters.lifecycle.registry.window_scores import WindowScores

__all__ = ["RegistryStore"]


class RegistryStore(abc.ABC):
    """Adapter versions keyed by ``(kind, version)``, aliases as audited pointers, evaluations."""

    @abc.abstractmethod
    def register(
        self,
        kind: str,
        *,
        path: str | Path,
        sha256: str,
        window_id: WindowId | Iterable[WindowId] | None = None,
        trigger: str | None = None,
        parents: Iterable[AdapterKey | tuple[str, int]] = (),
        metrics: Mapping[str, Any] | None = None,
        status: str = "candidate",
        status_reason: str | None = None,
        uri: str | None = None,
    ) -> AdapterVersion:
        """Record a new version of ``kind`` under the next free version number.

        ``uri``: where an artifact store already keeps the folder; ``None`` lets the store
        decide (a store that has an artifact store puts the folder there first).
        """

    @abc.abstractmethod
    def get(self, kind: str, version: int) -> AdapterVersion:
        """One version; :class:`AdapterVersionNotFound` when absent."""

    @abc.abstractmethod
    def latest(self, kind: str, *, status: str | None = None) -> AdapterVersion | None:
        """The highest version of ``kind`` (optionally with that status), or ``None``."""

    @abc.abstractmethod
    def list(
        self, kind: str | None = None, status: str | None = None, limit: int | None = None
    ) -> builtins.list[AdapterVersion]:
        """Versions, newest first, optionally filtered."""

    @abc.abstractmethod
    def reject(self, kind: str, version: int, reason: str) -> AdapterVersion:
        """Mark a version rejected; refused while a ``serving-*`` alias points at it."""

    @abc.abstractmethod
    def archive(self, kind: str, version: int, reason: str | None = None) -> AdapterVersion:
        """Mark a version archived; refused while a ``serving-*`` alias points at it."""

    @abc.abstractmethod
    def set_alias(
        self, alias: str, kind: str, version: int, *, reason: str, actor: str
    ) -> AliasChange:
        """Point ``alias`` at a version (not a rejected one) and log who, why and the old target."""

    @abc.abstractmethod
    def resolve(self, alias: str) -> AdapterVersion | None:
        """The version ``alias`` points at, or ``None`` when it was never set."""

    @abc.abstractmethod
    def aliases(self) -> dict[str, AdapterKey]:
        """Every alias and its current target."""

    @abc.abstractmethod
    def alias_history(self, alias: str) -> builtins.list[AliasChange]:
        """Every change of ``alias``, oldest first; :class:`AliasNotFound` when never set."""

    @abc.abstractmethod
    def rollback(self, alias: str, *, reason: str, actor: str) -> AdapterVersion:
        """Restore the target ``alias`` had before its current one (repeatable, and logged)."""

    @abc.abstractmethod
    def record_evaluation(
        self,
        kind: str,
        version: int,
        window_id: WindowId,
        auc: float | None,
        logloss: float | None,
        n: int,
    ) -> Evaluation:
        """Store (or replace) the test-then-train metrics of a version on one window."""

    @abc.abstractmethod
    def evaluations(
        self,
        kind: str | None = None,
        version: int | None = None,
        window_id: WindowId | None = None,
    ) -> builtins.list[Evaluation]:
        """Recorded evaluations, oldest first, optionally filtered."""

    @abc.abstractmethod
    def record_window_scores(
        self,
        window_id: WindowId,
        columns: Mapping[str, Any],
        metrics: Mapping[str, Mapping[str, float]],
    ) -> WindowScores:
        """Store (or replace) one window's out-of-sample per-sample columns and metrics."""

    @abc.abstractmethod
    def window_scores(self, limit: int | None = None) -> builtins.list[WindowScores]:
        """The newest ``limit`` windows' scores (all by default), oldest first."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> RegistryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
