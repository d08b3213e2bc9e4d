"""Per-window out-of-sample scores: stored, replaced on a retry, read newest-N oldest first,
survive a re-open, and bad values are refused by name (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from lsat.adapters.lifecycle.registry import InvalidRegistryValue, SqlRegistryStore, open_registry


def _columns(n: int, shift: float = 0.0) -> dict[str, list]:
    return {
        "label": [i % 2 for i in range(n)],
        "event_id": [f"e{i}" for i in range(n)],
        "long": [0.1 + shift + i / (2 * n) for i in range(n)],
    }


def test_record_replace_and_read_newest_first_limit(registry: SqlRegistryStore) -> None:
    for window in (3, 4, 5):
        registry.record_window_scores(window, _columns(4), {"long": {"auc": 0.5 + window / 100}})
    again = registry.record_window_scores(4, _columns(6, 0.2), {"long": {"auc": 0.9}})
    assert again.n == 6 and again.columns["long"][0] == pytest.approx(0.3)
    rows = registry.window_scores()
    assert [r.window_id for r in rows] == ["3", "4", "5"]  # a replaced row keeps its place
    assert [r.window_id for r in registry.window_scores(limit=2)] == ["4", "5"]
    assert rows[1].metrics == {"long": {"auc": 0.9}} and rows[1].columns["event_id"][5] == "e5"


def test_rows_survive_reopening(db_url: str) -> None:
    with open_registry(db_url) as first:
        first.record_window_scores(7, _columns(3), {})
    with open_registry(db_url) as second:
        (row,) = second.window_scores()
    assert (row.window_id, row.n, row.columns["label"]) == ("7", 3, [0, 1, 0])


@pytest.mark.parametrize(
    ("columns", "metrics", "named"),
    [
        ({}, {}, "columns"),
        ({"label": [1, 0], "p": [0.5]}, {}, "differ in length"),
        ({"p": [float("nan")]}, {}, "columns.p"),
        ({"p": [True]}, {}, "columns.p"),
        ({"p": "0.5"}, {}, "columns.p"),
        ({"p": [0.5]}, {"long": {"auc": float("inf")}}, "metrics.long.auc"),
        ({"p": [0.5]}, {"long": 0.5}, "metrics.long"),
    ],
)
def test_bad_values_are_refused_by_name(
    registry: SqlRegistryStore, columns: dict, metrics: dict, named: str
) -> None:
    with pytest.raises(InvalidRegistryValue, match=named):
        registry.record_window_scores(1, columns, metrics)
    assert registry.window_scores() == []


def test_limit_must_be_positive(registry: SqlRegistryStore) -> None:
    with pytest.raises(InvalidRegistryValue, match="limit"):
        registry.window_scores(limit=0)
