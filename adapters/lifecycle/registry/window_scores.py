"""Per-window test-then-train scores: the entity, its checks, and the SQL behind the store.

A window's row holds equal-length columns (``label``, ``event_id``, each scorer's probability,
the rate features), every value scored *before* any training on that window, plus each scored
name's AUC and logloss. The trainer fits its combiners on the rows of recent windows, so they
must survive a restart; :meth:`RegistryStore.record_window_scores` replaces a window's row when
a retried job records it again.

>>> check_columns({"label": [1, 0], "p": [0.5, 0.25]})
2
>>> check_columns({"label": [1, 0], "p": [0.5]})
Traceback (most recent call last):
...
lsat.adapters.lifecycle.registry.errors.InvalidRegistryValue: invalid columns={'label': 2, 'p': 1}: columns differ in length
"""  # noqa: E501

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lsat.adapters.lifecycle.registry.errors import InvalidRegistryValue
from lsat.adapters.lifecycle.registry.models import WindowScoreRow, utc_now

__all__ = [
    "WindowScores",
    "check_columns",
    "check_window_metrics",
    "upsert_window_scores",
    "window_scores_entity",
    "window_scores_query",
]


@dataclass(frozen=True, slots=True)
class WindowScores:
    """One window's out-of-sample columns and per-name ``{"auc": …, "logloss": …}``."""

    window_id: str
    n: int
    columns: Mapping[str, Sequence[Any]]
    metrics: Mapping[str, Mapping[str, float]]
    recorded_at: datetime
    id: int = field(default=0, compare=False)


def check_columns(columns: Mapping[str, Sequence[Any]]) -> int:
    """The common length of ``columns`` (lists of finite numbers or strings); raises
    :class:`InvalidRegistryValue` naming the bad column otherwise."""
    if not isinstance(columns, Mapping) or not columns:
        raise InvalidRegistryValue("columns", columns, "expected a non-empty mapping")
    lengths = {}
    for name, values in columns.items():
        if not isinstance(name, str) or not name:
            raise InvalidRegistryValue("columns", name, "column names must be non-empty strings")
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            raise InvalidRegistryValue(f"columns.{name}", type(values).__name__, "expected a list")
        for value in values:
            finite = isinstance(value, int | float) and math.isfinite(value)
            if isinstance(value, bool) or not (finite or isinstance(value, str)):
                raise InvalidRegistryValue(
                    f"columns.{name}", value, "expected finite numbers or strings"
                )
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        raise InvalidRegistryValue("columns", lengths, "columns differ in length")
    return next(iter(lengths.values()))


def check_window_metrics(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, dict]:
    """``{name: {metric: finite number}}`` as plain dicts; raises naming the bad entry.

    >>> check_window_metrics({"long": {"auc": 0.6}})
    {'long': {'auc': 0.6}}
    """
    out: dict[str, dict] = {}
    for name, values in metrics.items():
        if not isinstance(values, Mapping):
            raise InvalidRegistryValue(f"metrics.{name}", values, "expected a mapping")
        for key, value in values.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value):
                raise InvalidRegistryValue(f"metrics.{name}.{key}", value, "expected a number")
        out[str(name)] = {str(k): float(v) for k, v in values.items()}
    return out


def window_scores_entity(row: WindowScoreRow) -> WindowScores:
    """The plain record of a window-scores row."""
    return WindowScores(
        window_id=row.window_id,
        n=row.n,
        columns={k: list(v) for k, v in row.columns.items()},
        metrics={k: dict(v) for k, v in row.metrics.items()},
        recorded_at=row.recorded_at,
        id=row.id,
    )


def upsert_window_scores(
    session: Session, window: str, n: int, columns: dict[str, list], metrics: dict[str, dict]
) -> WindowScores:
    """Insert or replace the row of ``window`` (values checked already), race-safe like the
    evaluation rows: a concurrent first insert turns this pass into an update."""
    query = select(WindowScoreRow).where(WindowScoreRow.window_id == window)
    values = {"n": n, "columns": columns, "metrics": metrics}
    for _ in range(2):
        row = session.scalar(query)
        if row is None:
            row = WindowScoreRow(window_id=window, recorded_at=utc_now(), **values)
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:
                continue
        else:
            row.n, row.columns, row.metrics = n, columns, metrics
            row.recorded_at = utc_now()
            session.flush()
        return window_scores_entity(row)
    raise AssertionError("unreachable: window scores neither inserted nor found")


def window_scores_query(limit: int | None) -> Select[WindowScoreRow]:
    """The newest ``limit`` rows (all when ``None``) by recording order, newest first."""
    query = select(WindowScoreRow).order_by(WindowScoreRow.id.desc())
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidRegistryValue("limit", limit, "expected an integer >= 1")
        query = query.limit(limit)
    return query
