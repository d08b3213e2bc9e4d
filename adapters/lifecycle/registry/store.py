"""The SQL store of the registry (SQLite by default, PostgreSQL by URL).

Version numbers are allocated as ``max(version) + 1`` and claimed by the unique constraint on
``(kind, version)``: each attempt runs in its own ``begin_nested()`` savepoint, so a clash with
a concurrent trainer rolls back only that attempt and the next one starts on a clean session.
After ``max_attempts`` clashes :class:`VersionAllocationFailed` is raised.

>>> registry = open_registry("sqlite://")
>>> v1 = registry.register("short", path="/a/short-1", sha256="0" * 64, window_id=3)
>>> v2 = registry.register("short", path="/a/short-2", sha256="1" * 64, window_id=4)
>>> (v1.version, v2.version), registry.latest("short").key
((1, 2), AdapterKey(kind='short', version=2))
>>> _ = registry.set_alias("serving-short", "short", 1, reason="bootstrap", actor="doc")
>>> _ = registry.set_alias("serving-short", "short", 2, reason="better AUC", actor="doc")
>>> registry.rollback("serving-short", reason="regression", actor="doc").version
1
>>> registry.close()
"""

from __future__ import annotations

import builtins
import logging
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lsat.adapters.lifecycle.registry import validation as check
from lsat.adapters.lifecycle.registry.base import RegistryStore
from lsat.adapters.lifecycle.registry.engine import upgrade_to_head
from lsat.adapters.lifecycle.registry.entities import (
    AdapterKey,
    AdapterVersion,
    AliasChange,
    Evaluation,
    WindowId,
    served_stack,
)
from lsat.adapters.lifecycle.registry.errors import (
    AdapterVersionInUse,
    AdapterVersionNotFound,
    AliasNotFound,
    AliasUnchanged,
    InvalidRegistryValue,
    NoPreviousTarget,
    VersionAllocationFailed,
    VersionRejected,
)
from lsat.adapters.lifecycle.registry.evaluation_rows import evaluation_query, upsert_evaluation
from lsat.adapters.lifecycle.registry.mapping import (
    change_entity,
    evaluation_entity,
    version_entity,
)
from lsat.adapters.lifecycle.registry.models import (
    AdapterVersionRow,
    AliasHistoryRow,
    AliasRow,
    utc_now,
)
from lsat.adapters.lifecycle.registry.window_scores import (
    WindowScores,
    check_columns,
    check_window_metrics,
    upsert_window_scores,
    window_scores_entity,
    window_scores_query,
)
from lsat.core.db import READ_ONLY_OPTION, create_db_engine

if TYPE_CHECKING:
    from lsat.adapters.lifecycle.artifact_store import ArtifactStore

__all__ = ["DEFAULT_MAX_ATTEMPTS", "SqlRegistryStore", "open_registry"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 20
_BACKOFF_BASE_S = 0.005
_BACKOFF_CAP_S = 0.2


def open_registry(
    url: str, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, artifact_store: str | None = None
) -> SqlRegistryStore:
    """Open the registry at a SQLAlchemy URL, migrating its tables to the newest revision.

    ``artifact_store`` (``file`` | ``db``, ``LSAT_ARTIFACT_STORE``): the store every registered
    folder is put in first (its URI is recorded); ``None`` records paths only, as readers need.
    """
    engine = create_db_engine(url)
    try:
        upgrade_to_head(engine)
        artifacts = None
        if artifact_store is not None:
            from lsat.adapters.lifecycle.artifact_stores import open_artifact_store

            artifacts = open_artifact_store(artifact_store, engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlRegistryStore(engine, max_attempts=max_attempts, artifacts=artifacts)


class SqlRegistryStore(RegistryStore):
    """:class:`RegistryStore` on a SQLAlchemy engine whose schema is already at head.

    With ``artifacts``, :meth:`register` first puts the folder in that artifact store and
    records its URI, so a version row never exists without its stored bytes (a rejected
    version is recorded without one: it can never serve).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        if max_attempts < 1:
            raise InvalidRegistryValue("max_attempts", max_attempts, "expected >= 1")
        self.engine = engine
        self.max_attempts = max_attempts
        self.artifacts = artifacts
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clash_lock = threading.Lock()
        self._version_clashes = 0

    @property
    def version_clashes(self) -> int:
        """How many version-number attempts lost a race to another writer (and were retried)."""
        return self._version_clashes

    def close(self) -> None:
        if self.artifacts is not None:
            self.artifacts.close()
        self.engine.dispose()

    @contextmanager
    def _transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        with self._sessions.begin() as session:
            if read_only:
                session.connection(execution_options={READ_ONLY_OPTION: True})
            yield session

    # --- versions -------------------------------------------------------------------------

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
        values: dict[str, Any] = {
            "kind": check.check_kind(kind),
            "path": check.check_path(path),
            "sha256": check.check_sha256(sha256),
            "window_ids": check.check_window_ids(window_id),
            "trigger": check.check_trigger(trigger),
            "metrics": check.check_metrics(metrics),
            "status": check.check_status(status),
            "status_reason": None
            if status_reason is None
            else check.check_text("status_reason", status_reason),
        }
        parent_keys = check.check_parents(parents)
        values["parents"] = [{"kind": p.kind, "version": p.version} for p in parent_keys]
        if uri is None and self.artifacts is not None and values["status"] != "rejected":
            uri = self.artifacts.put_expecting(Path(values["path"]), values["sha256"]).uri
        values["uri"] = None if uri is None else check.check_uri(uri)
        with self._transaction() as session:
            for parent in parent_keys:
                self._version_row(session, parent.kind, parent.version)
            for attempt in range(1, self.max_attempts + 1):
                version = self._next_version(session, values["kind"])
                row = AdapterVersionRow(version=version, created_at=utc_now(), **values)
                try:
                    with session.begin_nested():
                        session.add(row)
                except IntegrityError:
                    if not self._version_exists(session, values["kind"], version):
                        raise  # not a version clash: a real constraint violation
                    with self._clash_lock:
                        self._version_clashes += 1
                    logger.debug(
                        "%s/v%d taken by another writer (attempt %d)", kind, version, attempt
                    )
                    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))
                    continue
                return version_entity(row)
        raise VersionAllocationFailed(kind=values["kind"], attempts=self.max_attempts)

    def _next_version(self, session: Session, kind: str) -> int:
        query = select(func.coalesce(func.max(AdapterVersionRow.version), 0)).where(
            AdapterVersionRow.kind == kind
        )
        return int(session.scalar(query) or 0) + 1

    @staticmethod
    def _version_exists(session: Session, kind: str, version: int) -> bool:
        query = select(AdapterVersionRow.id).where(
            AdapterVersionRow.kind == kind, AdapterVersionRow.version == version
        )
        return session.scalar(query) is not None

    @staticmethod
    def _version_row(session: Session, kind: str, version: int) -> AdapterVersionRow:
        query = select(AdapterVersionRow).where(
            AdapterVersionRow.kind == check.check_kind(kind),
            AdapterVersionRow.version == check.check_version(version),
        )
        row = session.scalar(query)
        if row is None:
            raise AdapterVersionNotFound(kind=kind, version=version)
        return row

    def get(self, kind: str, version: int) -> AdapterVersion:
        with self._transaction(read_only=True) as session:
            return version_entity(self._version_row(session, kind, version))

    def latest(self, kind: str, *, status: str | None = None) -> AdapterVersion | None:
        query = select(AdapterVersionRow).where(AdapterVersionRow.kind == check.check_kind(kind))
        if status is not None:
            query = query.where(AdapterVersionRow.status == check.check_status(status))
        with self._transaction(read_only=True) as session:
            row = session.scalar(query.order_by(AdapterVersionRow.version.desc()).limit(1))
            return None if row is None else version_entity(row)

    def list(
        self, kind: str | None = None, status: str | None = None, limit: int | None = None
    ) -> builtins.list[AdapterVersion]:
        query = select(AdapterVersionRow)
        if kind is not None:
            query = query.where(AdapterVersionRow.kind == check.check_kind(kind))
        if status is not None:
            query = query.where(AdapterVersionRow.status == check.check_status(status))
        query = query.order_by(AdapterVersionRow.created_at.desc(), AdapterVersionRow.id.desc())
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise InvalidRegistryValue("limit", limit, "expected an integer >= 1")
            query = query.limit(limit)
        with self._transaction(read_only=True) as session:
            return [version_entity(row) for row in session.scalars(query)]

    def reject(self, kind: str, version: int, reason: str) -> AdapterVersion:
        return self._set_status(kind, version, "rejected", check.check_text("reason", reason))

    def archive(self, kind: str, version: int, reason: str | None = None) -> AdapterVersion:
        text = None if reason is None else check.check_text("reason", reason)
        return self._set_status(kind, version, "archived", text)

    def _set_status(
        self, kind: str, version: int, status: str, reason: str | None
    ) -> AdapterVersion:
        with self._transaction() as session:
            row = self._version_row(session, kind, version)
            serving = session.scalars(
                select(AliasRow.alias).where(
                    AliasRow.kind == kind,
                    AliasRow.version == version,
                    AliasRow.alias.like("serving%"),
                )
            ).all()
            if serving:
                raise AdapterVersionInUse(kind=kind, version=version, aliases=tuple(serving))
            row.status, row.status_reason = status, reason
            return version_entity(row)

    # --- aliases --------------------------------------------------------------------------

    @staticmethod
    def _lock_alias(session: Session, alias: str) -> AliasRow | None:
        """Serialise writers of one alias (SQLite already holds the write lock at BEGIN)."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(func.hashtext(alias))))
        return session.get(AliasRow, alias, populate_existing=True)

    def set_alias(
        self, alias: str, kind: str, version: int, *, reason: str, actor: str
    ) -> AliasChange:
        alias = check.check_alias(alias, kind=check.check_kind(kind))
        reason, actor = (
            check.check_text("reason", reason),
            check.check_text("actor", actor, max_len=200),
        )
        with self._transaction() as session:
            target = self._version_row(session, kind, version)
            if target.status == "rejected":
                raise VersionRejected(kind=kind, version=version, reason=target.status_reason)
            current = self._lock_alias(session, alias)
            if current is not None and (current.kind, current.version) == (kind, version):
                raise AliasUnchanged(alias=alias, kind=kind, version=version)
            previous = None if current is None else AdapterKey(current.kind, current.version)
            change = self._move_alias(
                session, alias, current, AdapterKey(kind, version), previous, "set", actor, reason
            )
            return change

    @staticmethod
    def _move_alias(
        session: Session,
        alias: str,
        current: AliasRow | None,
        target: AdapterKey,
        previous: AdapterKey | None,
        action: str,
        actor: str,
        reason: str,
    ) -> AliasChange:
        now = utc_now()
        if current is None:
            session.add(
                AliasRow(alias=alias, kind=target.kind, version=target.version, updated_at=now)
            )
        else:
            current.kind, current.version, current.updated_at = target.kind, target.version, now
        history = AliasHistoryRow(
            alias=alias,
            action=action,
            kind=target.kind,
            version=target.version,
            previous_kind=None if previous is None else previous.kind,
            previous_version=None if previous is None else previous.version,
            actor=actor,
            reason=reason,
            changed_at=now,
        )
        session.add(history)
        session.flush()
        return change_entity(history)

    def resolve(self, alias: str) -> AdapterVersion | None:
        alias = check.check_alias(alias)
        with self._transaction(read_only=True) as session:
            pointer = session.get(AliasRow, alias)
            if pointer is None:
                return None
            return version_entity(self._version_row(session, pointer.kind, pointer.version))

    def aliases(self) -> dict[str, AdapterKey]:
        with self._transaction(read_only=True) as session:
            rows = session.scalars(select(AliasRow).order_by(AliasRow.alias))
            return {row.alias: AdapterKey(row.kind, row.version) for row in rows}

    def alias_history(self, alias: str) -> builtins.list[AliasChange]:
        alias = check.check_alias(alias)
        with self._transaction(read_only=True) as session:
            changes = [change_entity(row) for row in self._history_rows(session, alias)]
        if not changes:
            raise AliasNotFound(alias=alias)
        return changes

    @staticmethod
    def _history_rows(session: Session, alias: str) -> builtins.list[AliasHistoryRow]:
        query = select(AliasHistoryRow).where(AliasHistoryRow.alias == alias)
        return builtins.list(session.scalars(query.order_by(AliasHistoryRow.id)))

    def rollback(self, alias: str, *, reason: str, actor: str) -> AdapterVersion:
        alias = check.check_alias(alias)
        reason, actor = (
            check.check_text("reason", reason),
            check.check_text("actor", actor, max_len=200),
        )
        with self._transaction() as session:
            current = self._lock_alias(session, alias)
            if current is None:
                raise AliasNotFound(alias=alias)
            stack = served_stack(
                (row.action, AdapterKey(row.kind, row.version))
                for row in self._history_rows(session, alias)
            )
            if len(stack) < 2:
                raise NoPreviousTarget(alias=alias)
            target = stack[-2]
            row = self._version_row(session, target.kind, target.version)
            if row.status == "rejected":
                raise VersionRejected(kind=row.kind, version=row.version, reason=row.status_reason)
            previous = AdapterKey(current.kind, current.version)
            self._move_alias(session, alias, current, target, previous, "rollback", actor, reason)
            return version_entity(row)

    # --- evaluations ----------------------------------------------------------------------

    def record_evaluation(
        self,
        kind: str,
        version: int,
        window_id: WindowId,
        auc: float | None,
        logloss: float | None,
        n: int,
    ) -> Evaluation:
        window = str(check.check_window_ids(window_id)[0])
        values = {
            "auc": check.check_score("auc", auc, upper=1.0),
            "logloss": check.check_score("logloss", logloss, upper=math.inf),
            "n": check.check_count("n", n),
        }
        with self._transaction() as session:
            self._version_row(session, kind, version)
            return upsert_evaluation(session, kind, version, window, values)

    def evaluations(
        self,
        kind: str | None = None,
        version: int | None = None,
        window_id: WindowId | None = None,
    ) -> builtins.list[Evaluation]:
        query = evaluation_query(kind, version, window_id)
        with self._transaction(read_only=True) as session:
            return [evaluation_entity(row) for row in session.scalars(query)]

    def record_window_scores(
        self,
        window_id: WindowId,
        columns: Mapping[str, Any],
        metrics: Mapping[str, Mapping[str, float]],
    ) -> WindowScores:
        window = str(check.check_window_ids(window_id)[0])
        n = check_columns(columns)
        values = {str(k): list(v) for k, v in columns.items()}
        checked = check_window_metrics(metrics)
        with self._transaction() as session:
            return upsert_window_scores(session, window, n, values, checked)

    def window_scores(self, limit: int | None = None) -> builtins.list[WindowScores]:
        query = window_scores_query(limit)
        with self._transaction(read_only=True) as session:
            rows = [window_scores_entity(row) for row in session.scalars(query)]
        return rows[::-1]
