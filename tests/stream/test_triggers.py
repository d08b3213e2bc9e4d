"""Retrain requests: JSON round trip, validation of consumed messages, the drift-close rule."""

from __future__ import annotations

import json

import pytest

from lsat.stream.errors import InvalidEvent
from lsat.stream.triggers import TRIGGERS, RetrainRequest, drift_close_due
from lsat.stream.windows import ClosedWindow, WindowPolicy, WindowState

GOOD = RetrainRequest(4, 100, 900, 512, "drift", {"label_shift": -4.5, "mix_shift": 0.07}, 12.5)


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_request_round_trips_for_every_trigger(trigger: str) -> None:
    request = RetrainRequest(1, 10, 20, 3, trigger, {}, 1.0)  # type: ignore[arg-type]
    assert RetrainRequest.from_json(request.to_json()) == request


def test_request_json_carries_its_id_and_every_field() -> None:
    record = json.loads(GOOD.to_json())
    assert record == {
        "request_id": "window-4",
        "window_id": 4,
        "first_ts": 100,
        "last_ts": 900,
        "sample_count": 512,
        "trigger": "drift",
        "drift": {"label_shift": -4.5, "mix_shift": 0.07},
        "created_s": 12.5,
    }


def test_from_closed_copies_the_window_and_tags_the_reason() -> None:
    closed = ClosedWindow(7, "span", 50, 40, 95, 30, 2)
    request = RetrainRequest.from_closed(closed, created_s=3.0)
    assert request == RetrainRequest(7, 40, 95, 30, "span", {}, 3.0)


def mutate(**changes: object) -> bytes:
    record = json.loads(GOOD.to_json())
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"{", "not JSON"),
        (b"[1]", "not an object"),
        (mutate(window_id=...), "window_id"),
        (mutate(extra=1), "extra"),
        (mutate(window_id=-1), "-1"),
        (mutate(sample_count=True), "True"),
        (mutate(sample_count=0), "count 0"),
        (mutate(first_ts=1000), "1000..900"),
        (mutate(trigger="boredom"), "boredom"),
        (mutate(drift=[1]), "[1]"),
        (mutate(drift={"x": "high"}), "high"),
        (mutate(created_s="now"), "now"),
    ],
)
def test_bad_requests_are_rejected_naming_the_value(raw: bytes, shown: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        RetrainRequest.from_json(raw)
    assert info.value.reason_code == "bad_retrain_request"
    assert shown in info.value.detail


@pytest.mark.parametrize(
    ("count", "min_on_drift", "pending", "due"),
    [
        (1, 2, {"adwin": 1.0}, False),
        (2, 2, {"adwin": 1.0}, True),
        (49, 50, {"adwin": 1.0}, False),
        (50, 50, {"adwin": 1.0}, True),
        (99, 50, {}, False),
    ],
)
def test_drift_closes_only_with_enough_samples(
    count: int, min_on_drift: int, pending: dict[str, float], due: bool
) -> None:
    policy = WindowPolicy(max_samples=100, min_samples_on_drift=min_on_drift)
    assert drift_close_due(WindowState(count=count), policy, pending) is due
