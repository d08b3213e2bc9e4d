"""ORM rows → plain entities: the only place rows are read out of (they never leave the store)."""

from __future__ import annotations

from lsat.adapters.lifecycle.registry.entities import (
    AdapterKey,
    AdapterVersion,
    AliasChange,
    Evaluation,
)
from lsat.adapters.lifecycle.registry.models import (
    AdapterEvaluationRow,
    AdapterVersionRow,
    AliasHistoryRow,
)

__all__ = ["change_entity", "evaluation_entity", "version_entity"]


def version_entity(row: AdapterVersionRow) -> AdapterVersion:
    """The plain record of a version row."""
    return AdapterVersion(
        kind=row.kind,
        version=row.version,
        path=row.path,
        sha256=row.sha256,
        status=row.status,
        created_at=row.created_at,
        status_reason=row.status_reason,
        trigger=row.trigger,
        window_ids=tuple(row.window_ids),
        parents=tuple(AdapterKey(p["kind"], int(p["version"])) for p in row.parents),
        metrics=dict(row.metrics),
        uri=row.uri,
    )


def change_entity(row: AliasHistoryRow) -> AliasChange:
    """The plain record of an alias history row."""
    previous = None
    if row.previous_kind is not None and row.previous_version is not None:
        previous = AdapterKey(row.previous_kind, row.previous_version)
    return AliasChange(
        id=row.id,
        alias=row.alias,
        action="rollback" if row.action == "rollback" else "set",
        target=AdapterKey(row.kind, row.version),
        previous=previous,
        actor=row.actor,
        reason=row.reason,
        changed_at=row.changed_at,
    )


def evaluation_entity(row: AdapterEvaluationRow) -> Evaluation:
    """The plain record of an evaluation row."""
    return Evaluation(
        kind=row.kind,
        version=row.version,
        window_id=row.window_id,
        auc=row.auc,
        logloss=row.logloss,
        n=row.n,
        recorded_at=row.recorded_at,
    )
