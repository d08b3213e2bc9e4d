"""The per-event step: sequences of interactions in, effects out (no Kafka, no DB, no model)."""

from __future__ import annotations

import json
import random

import pytest

from lsat.data.samples import HistoryTracker
from lsat.data.types import HISTORY_LENGTH, Interaction
from lsat.stream.drift import LabelRateShift, MixShift
from lsat.stream.errors import InvalidConfig
from lsat.stream.pipeline import (
    Detectors,
    PipelineState,
    StepResult,
    close_manually,
    process_interaction,
)
from lsat.stream.windows import WindowPolicy, WindowState

T0 = 880_000_000


def run(
    events: list[tuple[str, str, int, int]],
    policy: WindowPolicy,
    *,
    length: int = 1,
    detectors: Detectors | None = None,
    state: PipelineState | None = None,
) -> tuple[PipelineState, list[StepResult]]:
    history = HistoryTracker(length=length)
    state = state or PipelineState()
    results = []
    for user, item, dt, label in events:
        event = Interaction(user, item, T0 + dt, label)
        state, result = process_interaction(
            state, event, policy=policy, history=history, detectors=detectors, now_s=1.0
        )
        results.append(result)
    return state, results


def summary(result: StepResult) -> tuple:
    """(has sample, window id, late, triggers of the requests) for table comparison."""
    triggers = tuple(r.trigger for r in result.requests)
    return (result.sample is not None, result.window_id, result.late, triggers)


SEQUENCES = [
    (
        "first interaction of each user gives no sample (history length 1)",
        WindowPolicy(max_samples=10),
        [("a", "i1", 0, 1), ("b", "i1", 1, 0), ("a", "i2", 2, 1), ("b", "i3", 3, 1)],
        [(False, 0, False, ()), (False, 0, False, ()), (True, 0, False, ()), (True, 0, False, ())],
    ),
    (
        "count closes after max_samples samples; non-samples do not count",
        WindowPolicy(max_samples=2),
        [("a", "i1", 0, 1), ("a", "i2", 1, 1), ("b", "i1", 2, 1), ("a", "i3", 3, 0)],
        [
            (False, 0, False, ()),
            (True, 0, False, ()),
            (False, 0, False, ()),
            (True, 0, False, ("full",)),
        ],
    ),
    (
        "span closes on a non-sample event and the next sample opens window 1",
        WindowPolicy(max_samples=10, max_span_s=100),
        [("a", "i1", 0, 1), ("a", "i2", 10, 1), ("b", "i1", 500, 1), ("a", "i3", 501, 1)],
        [
            (False, 0, False, ()),
            (True, 0, False, ()),
            (False, 1, False, ("span",)),
            (True, 1, False, ()),
        ],
    ),
    (
        "a late sample is flagged but stored in the open window",
        WindowPolicy(max_samples=10, allowed_lateness_s=5),
        [("a", "i1", 100, 1), ("a", "i2", 100, 1), ("b", "i1", 200, 1), ("a", "i3", 50, 0)],
        [(False, 0, False, ()), (True, 0, False, ()), (False, 0, False, ()), (True, 0, True, ())],
    ),
]


@pytest.mark.parametrize(
    ("name", "policy", "events", "expected"), SEQUENCES, ids=[s[0] for s in SEQUENCES]
)
def test_event_sequences(
    name: str, policy: WindowPolicy, events: list[tuple[str, str, int, int]], expected: list[tuple]
) -> None:
    _, results = run(events, policy)
    assert [summary(r) for r in results] == expected


def test_default_history_needs_ten_earlier_interactions() -> None:
    events = [("u", f"i{k}", k, k % 2) for k in range(HISTORY_LENGTH + 2)]
    _, results = run(events, WindowPolicy(max_samples=100), length=HISTORY_LENGTH)
    assert [r.sample is not None for r in results] == [False] * HISTORY_LENGTH + [True, True]
    last = results[-1].sample
    assert last is not None
    assert last.history_item_ids == tuple(f"i{k}" for k in range(1, 11))
    assert last.history_labels == tuple(k % 2 for k in range(1, 11))
    assert (last.item_id, last.label, last.event_id) == ("i11", 1, f"u:i11:{T0 + 11}")


def test_redelivered_event_is_a_duplicate_and_changes_nothing() -> None:
    policy = WindowPolicy(max_samples=10)
    history = HistoryTracker(length=1)
    state = PipelineState()
    first, second = Interaction("u", "a", T0, 1), Interaction("u", "b", T0 + 1, 1)
    for event in (first, second):
        state, _ = process_interaction(state, event, policy=policy, history=history, now_s=0)
    again_state, result = process_interaction(state, second, policy=policy, history=history)
    assert result == StepResult(None, None, duplicate=True)
    assert again_state == state
    assert history.history("u") == (("b", 1),)


def tiny_label_detector() -> LabelRateShift:
    """Reference of 4 labels, tested on the last 4: four 0s after four 1s give z ≈ -2.83."""
    return LabelRateShift(
        reference_size=4, window_size=4, min_count=4, z_threshold=2.5, z_warning=2
    )


def drift_events(n_likes: int, n_dislikes: int) -> list[tuple[str, str, int, int]]:
    """One user: a first interaction (no sample), then likes, then dislikes."""
    labels = [1] + [1] * n_likes + [0] * n_dislikes
    return [("u", f"i{k}", k, y) for k, y in enumerate(labels)]


def test_drift_closes_the_window_early_with_its_statistic() -> None:
    policy = WindowPolicy(max_samples=100, min_samples_on_drift=5)
    detectors = Detectors(labels=[tiny_label_detector()])
    state, results = run(drift_events(4, 4), policy, detectors=detectors)
    closes = [(i, r.requests) for i, r in enumerate(results) if r.requests]
    assert len(closes) == 1
    index, (request,) = closes[0]
    assert index == 8  # the 4th dislike
    assert (request.trigger, request.window_id, request.sample_count) == ("drift", 0, 8)
    assert request.drift["label_shift"] == pytest.approx(-2.828, abs=1e-3)
    assert results[index].drift["label_shift"]["drift"] is True
    assert state.window == WindowState(window_id=1, watermark=T0 + 8)
    assert state.pending_drift == {}


def test_drift_in_a_small_window_waits_until_it_holds_enough_samples() -> None:
    policy = WindowPolicy(max_samples=6, min_samples_on_drift=3)
    detectors = Detectors(labels=[tiny_label_detector()])
    events = [*drift_events(4, 4), ("u", "x1", 9, 0), ("u", "x2", 10, 0)]
    state, results = run(events, policy, detectors=detectors)
    triggers = [(i, [r.trigger for r in res.requests]) for i, res in enumerate(results)]
    # sample 6 fills window 0; the drift on sample 8 (window 1 holds 2) waits for sample 9
    assert [t for t in triggers if t[1]] == [(6, ["full"]), (9, ["drift"])]
    assert results[8].drift["label_shift"]["drift"] is True
    request = results[9].requests[0]
    assert (request.window_id, request.sample_count) == (1, 3)
    assert "label_shift" in request.drift
    assert state.window.window_id == 2


def test_drift_on_the_sample_that_fills_the_window_rides_on_the_full_request() -> None:
    policy = WindowPolicy(max_samples=8, min_samples_on_drift=2)
    detectors = Detectors(labels=[tiny_label_detector()])
    state, results = run(drift_events(4, 4), policy, detectors=detectors)
    assert [r.trigger for r in results[8].requests] == ["full"]
    assert "label_shift" in results[8].requests[0].drift
    assert state.pending_drift == {}


def test_pending_drift_rides_on_a_span_close() -> None:
    policy = WindowPolicy(max_samples=100, max_span_s=50, min_samples_on_drift=20)
    detectors = Detectors(labels=[tiny_label_detector()])
    events = [*drift_events(4, 4), ("v", "z", 500, 1)]
    state, results = run(events, policy, detectors=detectors)
    assert state.pending_drift == {}
    (request,) = results[-1].requests
    assert (request.trigger, request.sample_count, set(request.drift)) == (
        "span",
        8,
        {"label_shift"},
    )


def test_mix_detector_is_fed_only_when_the_category_is_known() -> None:
    mix = MixShift(reference_size=2, window_size=2, min_count=1, threshold=0.5, warning=0.1)
    detectors = Detectors(mix=[mix])
    history = HistoryTracker(length=1)
    state = PipelineState()
    policy = WindowPolicy(max_samples=100, min_samples_on_drift=2)
    for k, category in enumerate([None, "Drama", None, "Drama", "Horror"]):
        state, result = process_interaction(
            state,
            Interaction("u", f"i{k}", T0 + k, 1),
            policy=policy,
            history=history,
            detectors=detectors,
            item_category=category,
            now_s=0,
        )
        assert ("mix_shift" in result.drift) is (category is not None and k > 0)
    assert result.drift["mix_shift"]["statistic"] == pytest.approx(1.0)
    assert [r.trigger for r in result.requests] == ["drift"]


def test_manual_close_tags_the_request_and_ignores_an_empty_window() -> None:
    state, _ = run([("u", "a", 0, 1), ("u", "b", 1, 1)], WindowPolicy(max_samples=10))
    state, result = close_manually(state, now_s=2.0)
    assert [(r.trigger, r.sample_count, r.created_s) for r in result.requests] == [
        ("manual", 1, 2.0)
    ]
    again, nothing = close_manually(state)
    assert again == state
    assert nothing.requests == ()


def test_pipeline_state_round_trips_through_json() -> None:
    state = PipelineState(WindowState(2, 10, 9, 30, 5, 1, 31), {"adwin": 0.75})
    assert PipelineState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_detector_names_must_be_unique_and_known() -> None:
    with pytest.raises(InvalidConfig, match="unique"):
        Detectors(labels=[LabelRateShift()], mix=[LabelRateShift()])
    with pytest.raises(InvalidConfig, match="'adwin'"):
        Detectors(labels=[LabelRateShift()]).by_name("adwin")


def test_default_policy_keeps_a_drift_in_a_small_window_pending() -> None:
    """The issue's case: a drift soon after a window opened must not close a tiny window."""
    policy = WindowPolicy(max_samples=40)  # drift closes from 10 samples on (a quarter)
    detectors = Detectors(labels=[tiny_label_detector()])
    events = [*drift_events(4, 4), *(("u", f"x{k}", 20 + k, 0) for k in range(5))]
    _, results = run(events, policy, detectors=detectors)
    assert results[8].drift["label_shift"]["drift"] is True
    assert results[8].requests == ()
    closes = [(i, r.trigger, r.sample_count) for i, res in enumerate(results) for r in res.requests]
    assert closes == [(10, "drift", 10)]
    assert "label_shift" in results[10].requests[0].drift


def drifting_stream(n: int, seed: int = 0) -> list[tuple[Interaction, str]]:
    """Users with runs of likes/dislikes and a genre mix that moves every few hundred events."""
    rng = random.Random(seed)
    genres = ["Drama", "Comedy", "Action", "Horror"]
    out = []
    for k in range(n):
        phase = (k // 300) % 2
        label = int(rng.random() < (0.75 if phase else 0.3))
        weights = [4, 3, 1, 1] if phase else [1, 1, 4, 3]
        genre = rng.choices(genres, weights=weights)[0]
        out.append((Interaction(f"u{rng.randrange(12)}", f"i{k}", T0 + k, label), genre))
    return out


def small_detectors() -> Detectors:
    return Detectors(
        labels=[LabelRateShift(60, 40, 20, 3.0, 2.0)],
        mix=[MixShift(60, 40, 20, 0.08, 0.05)],
    )


def replay_with_restarts(
    events: list[tuple[Interaction, str]], restart_every: int | None, *, cold: bool = False
):
    """Requests of one run; with ``restart_every``, state and detectors go through JSON and
    fresh objects that often (what the worker does on a crash: history is kept aside);
    ``cold``: the detectors' state is not saved (they restart empty)."""
    policy, history = WindowPolicy(max_samples=80), HistoryTracker(length=1)
    state, detectors = PipelineState(), small_detectors()
    requests = []
    for k, (event, genre) in enumerate(events):
        if restart_every and k % restart_every == 0:
            kept = None if cold else detectors
            saved = json.loads(json.dumps(state.to_dict(kept), allow_nan=False))
            detectors = small_detectors()
            state = PipelineState.from_dict(saved, detectors)
        state, result = process_interaction(
            state,
            event,
            policy=policy,
            history=history,
            detectors=detectors,
            item_category=genre,
            now_s=0,
        )
        requests.extend(result.requests)
    return requests


def test_restarts_with_saved_detectors_close_the_same_windows() -> None:
    events = drifting_stream(2000)
    clean = replay_with_restarts(events, None)
    assert len([r for r in clean if r.trigger == "drift"]) >= 5
    for every in (1, 7, 113):
        assert replay_with_restarts(events, every) == clean, f"restart every {every}"


def test_detectors_that_restart_cold_would_move_the_windows() -> None:
    """The failure the saved state prevents (so the test above can fail)."""
    events = drifting_stream(2000)
    requests = replay_with_restarts(events, 113, cold=True)
    clean = replay_with_restarts(events, None)
    assert [(r.window_id, r.sample_count) for r in requests] != [
        (r.window_id, r.sample_count) for r in clean
    ]


def test_detectors_saved_with_other_settings_start_empty() -> None:
    detectors = small_detectors()
    for event, genre in drifting_stream(200):
        detectors.labels[0].update(event.label)
        detectors.mix[0].update(genre)
    saved = json.loads(json.dumps(PipelineState().to_dict(detectors)))
    changed = Detectors(
        labels=[LabelRateShift(60, 40, 20, 3.5, 2.0)], mix=[MixShift(60, 40, 20, 0.08, 0.05)]
    )
    PipelineState.from_dict(saved, changed)
    assert changed.mix[0].to_state() == detectors.mix[0].to_state()
    assert changed.labels[0].to_state() == LabelRateShift(60, 40, 20, 3.5, 2.0).to_state()
    assert changed.load_state({}) == ["label_shift", "mix_shift"]


def test_a_save_without_detector_states_resets_them() -> None:
    detectors = small_detectors()
    detectors.labels[0].update(1)
    old_save = {"window": WindowState(window_id=4).to_dict(), "pending_drift": {}}
    state = PipelineState.from_dict(old_save, detectors)
    assert state.window.window_id == 4
    assert detectors.labels[0].to_state() == LabelRateShift(60, 40, 20, 3.0, 2.0).to_state()


def test_a_malformed_detector_state_is_refused() -> None:
    saved = PipelineState().to_dict(small_detectors())
    saved["detectors"]["label_shift"]["data"]["recent"] = "2"
    with pytest.raises(InvalidConfig, match="LabelRateShift"):
        PipelineState.from_dict(saved, small_detectors())
    saved["detectors"]["label_shift"] = [1]
    with pytest.raises(InvalidConfig, match="label_shift"):
        PipelineState.from_dict(saved, small_detectors())
