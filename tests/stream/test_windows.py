"""Event-time windows: assignment, lateness, closing by count and span, serialisation."""

from __future__ import annotations

import json

import pytest

from lsat.stream.errors import InvalidConfig
from lsat.stream.windows import MIN_TRAIN_SAMPLES, ClosedWindow, WindowPolicy, WindowState


def run(policy: WindowPolicy, events: list[tuple[str, int]]) -> tuple[WindowState, list[tuple]]:
    """Feed ("s", ts) samples / ("e", ts) non-sample events; return (window id, late, closes)."""
    state = WindowState()
    trace = []
    for kind, ts in events:
        state, step = state.add(ts, policy) if kind == "s" else state.advance(ts, policy)
        closes = tuple((c.window_id, c.reason, c.count) for c in step.closed)
        trace.append((step.window_id, step.late, closes))
    return state, trace


CASES = [
    (
        "count only: closes after every 3rd sample",
        WindowPolicy(max_samples=3),
        [("s", 10), ("s", 11), ("s", 12), ("s", 13)],
        [(0, False, ()), (0, False, ()), (0, False, ((0, "full", 3),)), (1, False, ())],
    ),
    (
        "span: the event passing start+span opens the next window",
        WindowPolicy(max_samples=100, max_span_s=10),
        [("s", 100), ("s", 110), ("s", 111), ("s", 115)],
        [(0, False, ()), (0, False, ()), (1, False, ((0, "span", 2),)), (1, False, ())],
    ),
    (
        "span closes on a non-sample event too",
        WindowPolicy(max_samples=100, max_span_s=10),
        [("s", 100), ("e", 200), ("s", 201)],
        [(0, False, ()), (1, False, ((0, "span", 1),)), (1, False, ())],
    ),
    (
        "an empty window never closes by span",
        WindowPolicy(max_samples=100, max_span_s=10),
        [("e", 100), ("e", 500), ("s", 501), ("s", 505)],
        [(0, False, ()), (0, False, ()), (0, False, ()), (0, False, ())],
    ),
    (
        "late within allowed lateness is not late",
        WindowPolicy(max_samples=100, allowed_lateness_s=5),
        [("s", 100), ("s", 95), ("s", 94)],
        [(0, False, ()), (0, False, ()), (0, True, ())],
    ),
    (
        "zero lateness: any out-of-order sample is late but counted",
        WindowPolicy(max_samples=3),
        [("s", 100), ("s", 99), ("s", 100)],
        [(0, False, ()), (0, True, ()), (0, False, ((0, "full", 3),))],
    ),
    (
        "late samples do not move the watermark, so no span close",
        WindowPolicy(max_samples=100, max_span_s=10, allowed_lateness_s=0),
        [("s", 100), ("s", 50), ("s", 109)],
        [(0, False, ()), (0, True, ()), (0, False, ())],
    ),
    (
        "span and full in the same step when max_samples is 1",
        WindowPolicy(max_samples=1, max_span_s=10),
        [("s", 100), ("s", 200)],
        [(0, False, ((0, "full", 1),)), (1, False, ((1, "full", 1),))],
    ),
    (
        "a late first sample anchors the span at the watermark",
        WindowPolicy(max_samples=2, max_span_s=10),
        [("s", 1000), ("s", 1001), ("s", 900), ("s", 1011)],
        [
            (0, False, ()),
            (0, False, ((0, "full", 2),)),
            (1, True, ()),
            (1, False, ((1, "full", 2),)),
        ],
    ),
]


@pytest.mark.parametrize(("name", "policy", "events", "expected"), CASES, ids=[c[0] for c in CASES])
def test_window_assignment_table(
    name: str, policy: WindowPolicy, events: list[tuple[str, int]], expected: list[tuple]
) -> None:
    _, trace = run(policy, events)
    assert trace == expected


def test_closed_window_reports_bounds_and_late_count() -> None:
    policy = WindowPolicy(max_samples=4, allowed_lateness_s=0)
    state = WindowState()
    closed: list[ClosedWindow] = []
    for ts in (100, 130, 90, 120):
        state, step = state.add(ts, policy)
        closed.extend(step.closed)
    assert closed == [ClosedWindow(0, "full", 100, 90, 130, 4, 2)]
    assert state == WindowState(window_id=1, watermark=130)


def test_watermark_is_max_event_time_seen() -> None:
    policy = WindowPolicy(max_samples=100)
    state = WindowState()
    for ts in (5, 9, 3, 7):
        state, _ = state.add(ts, policy)
    state, _ = state.advance(2, policy)
    assert state.watermark == 9
    assert (state.first_ts, state.last_ts, state.count, state.late_count) == (3, 9, 4, 2)


@pytest.mark.parametrize("reason", ["drift", "manual", "full", "span"])
def test_close_opens_next_window_keeping_watermark(reason: str) -> None:
    state, _ = WindowState(window_id=7).add(50, WindowPolicy(max_samples=10))
    nxt, closed = state.close(reason)  # type: ignore[arg-type]
    assert (closed.window_id, closed.reason, closed.count) == (7, reason, 1)
    assert nxt == WindowState(window_id=8, watermark=50)


@pytest.mark.parametrize(
    ("state", "reason", "match"),
    [
        (WindowState(), "manual", "empty"),
        (WindowState(0, 1, 1, 1, 1, 0, 1), "bored", "bored"),
    ],
)
def test_close_rejects_empty_window_and_unknown_reason(
    state: WindowState, reason: str, match: str
) -> None:
    with pytest.raises(InvalidConfig, match=match):
        state.close(reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_samples": 0}, "max_samples"),
        ({"max_samples": 5, "max_span_s": 0}, "max_span_s"),
        ({"max_samples": 5, "allowed_lateness_s": -1}, "allowed_lateness_s"),
        ({"max_samples": 5, "min_samples_on_drift": 6}, "min_samples_on_drift"),
        ({"max_samples": 5, "min_samples_on_drift": 0}, "min_samples_on_drift"),
        ({"max_samples": 5, "min_samples_on_drift": 1}, r"\[2, max_samples=5\], got 1"),
    ],
)
def test_policy_rejects_impossible_settings(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(InvalidConfig, match=match):
        WindowPolicy(**kwargs)


@pytest.mark.parametrize(
    "state",
    [WindowState(), WindowState(3, 100, 90, 140, 12, 2, 150)],
)
def test_state_round_trips_through_json(state: WindowState) -> None:
    assert WindowState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(InvalidConfig, match="colour"):
        WindowState.from_dict({"window_id": 1, "colour": "red"})


def test_state_is_immutable_and_methods_are_pure() -> None:
    policy = WindowPolicy(max_samples=2)
    start = WindowState()
    first, _ = start.add(10, policy)
    again, _ = start.add(10, policy)
    assert start == WindowState()
    assert first == again


@pytest.mark.parametrize(
    ("max_samples", "given", "expected"),
    [
        (2000, None, 500),  # a quarter of a full window by default
        (100, None, 25),
        (7, None, 2),
        (6, None, 2),  # never below the trainer's minimum
        (1, None, 1),  # ... unless a full window is smaller still
        (1, 1, 1),
        (100, 2, 2),
        (100, 100, 100),
    ],
)
def test_drift_close_minimum(max_samples: int, given: int | None, expected: int) -> None:
    policy = WindowPolicy(max_samples=max_samples, min_samples_on_drift=given)
    assert policy.drift_close_min == expected
    assert policy.drift_close_min >= min(MIN_TRAIN_SAMPLES, max_samples)
