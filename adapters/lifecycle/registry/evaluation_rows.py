"""SQL for the per-window evaluation rows: an idempotent upsert and the filtered query.

Kept apart from :mod:`lsat.adapters.lifecycle.registry.store` so the store's methods stay thin;
both functions
work inside a session the store opened (and whose transaction it owns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lsat.adapters.lifecycle.registry import validation as check
from lsat.adapters.lifecycle.registry.entities import Evaluation, WindowId
from lsat.adapters.lifecycle.registry.mapping import evaluation_entity
from lsat.adapters.lifecycle.registry.models import AdapterEvaluationRow, utc_now

__all__ = ["evaluation_query", "upsert_evaluation"]


def upsert_evaluation(
    session: Session, kind: str, version: int, window: str, values: Mapping[str, Any]
) -> Evaluation:
    """Insert or update the ``(kind, version, window)`` row with ``values`` (validated already).

    A concurrent first insert of the same row makes this pass an update instead, in a savepoint,
    so the caller's transaction survives the clash.
    """
    query = select(AdapterEvaluationRow).where(
        AdapterEvaluationRow.kind == kind,
        AdapterEvaluationRow.version == version,
        AdapterEvaluationRow.window_id == window,
    )
    for _ in range(2):
        row = session.scalar(query)
        if row is None:
            row = AdapterEvaluationRow(kind=kind, version=version, window_id=window)
            try:
                with session.begin_nested():
                    _assign(row, values, recorded_at=utc_now())
                    session.add(row)
            except IntegrityError:
                continue
        else:
            _assign(row, values, recorded_at=utc_now())
            session.flush()
        return evaluation_entity(row)
    raise AssertionError("unreachable: evaluation row neither inserted nor found")


def evaluation_query(
    kind: str | None, version: int | None, window_id: WindowId | None
) -> Select[AdapterEvaluationRow]:
    """Evaluation rows in recording order, filtered by whichever arguments are given."""
    query = select(AdapterEvaluationRow).order_by(AdapterEvaluationRow.id)
    if kind is not None:
        query = query.where(AdapterEvaluationRow.kind == check.check_kind(kind))
    if version is not None:
        query = query.where(AdapterEvaluationRow.version == check.check_version(version))
    if window_id is not None:
        window = str(check.check_window_ids(window_id)[0])
        query = query.where(AdapterEvaluationRow.window_id == window)
    return query


def _assign(row: object, values: Mapping[str, Any], **extra: Any) -> None:
    for name, value in {**values, **extra}.items():
        setattr(row, name, value)
