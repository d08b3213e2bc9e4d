"""TALLRec samples: history pushing, per-user tracking, dedup of re-delivered events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsat.data.errors import LsatDataError
from lsat.data.loaders import load_dataset
from lsat.data.samples import (
    HistoryTracker,
    build_samples,
    make_sample,
    push_history,
)
from lsat.data.types import HISTORY_LENGTH, Dataset, Interaction


@pytest.mark.parametrize(
    ("history", "item", "label", "length", "expected"),
    [
        ((), "a", 1, 3, (("a", 1),)),
        ((("a", 1),), "b", 0, 3, (("a", 1), ("b", 0))),
        ((("a", 1), ("b", 0), ("c", 1)), "d", 0, 3, (("b", 0), ("c", 1), ("d", 0))),
        ((("a", 1), ("b", 0)), "c", 1, 1, (("c", 1),)),
    ],
)
def test_push_history(history, item, label, length, expected) -> None:
    assert push_history(history, item, label, length) == expected


def test_push_history_rejects_bad_length() -> None:
    with pytest.raises(LsatDataError, match="got 0"):
        push_history((), "a", 1, 0)


@pytest.mark.parametrize(
    ("n_history", "has_sample"), [(0, False), (9, False), (10, True), (12, True)]
)
def test_make_sample_needs_full_history(n_history: int, has_sample: bool) -> None:
    history = tuple((f"i{k}", k % 2) for k in range(n_history))
    sample = make_sample(Interaction("u", "t", 99, 1, 5.0, "e1"), history)
    assert (sample is not None) == has_sample
    if sample is not None:
        assert sample.event_id == "e1"
        assert sample.history_item_ids == tuple(f"i{k}" for k in range(n_history - 10, n_history))
        assert len(sample.history_labels) == HISTORY_LENGTH


def user_events(user: str, n: int) -> list[Interaction]:
    return [Interaction(user, f"{user}-{k}", k, k % 2) for k in range(n)]


def test_tracker_interleaved_users_match_per_user_histories() -> None:
    a, b = user_events("a", 5), user_events("b", 4)
    interleaved = [x for pair in zip(a, b, strict=False) for x in pair] + a[4:]
    samples = HistoryTracker(length=3).observe_many(interleaved)
    assert [s.item_id for s in samples] == ["a-3", "b-3", "a-4"]
    assert samples[-1].history_item_ids == ("a-1", "a-2", "a-3")
    assert samples[-1].history_labels == (1, 0, 1)


def test_tracker_ignores_redelivered_events() -> None:
    events = user_events("u", 6)
    once = HistoryTracker(length=3).observe_many(events)
    tracker = HistoryTracker(length=3)
    twice = []
    for event in events:  # every event delivered twice, and an old one again at the end
        for _ in range(2):
            sample = tracker.observe(event)
            if sample:
                twice.append(sample)
    assert tracker.observe(events[1]) is None
    assert twice == once
    assert tracker.history("u") == (("u-3", 1), ("u-4", 0), ("u-5", 1))


def test_tracker_state_round_trips_through_json() -> None:
    events = user_events("u", 8)
    tracker = HistoryTracker(length=3, remember_events=5)
    tracker.observe_many(events[:6])
    state = json.loads(json.dumps(tracker.to_state("u")))
    assert len(state) == 5
    restored = HistoryTracker.from_state({"u": state}, length=3, remember_events=5)
    assert restored.observe(events[5]) is None  # still remembered as seen
    assert restored.observe_many(events[6:]) == tracker.observe_many(events[6:])
    assert HistoryTracker().to_state("nobody") == []


@pytest.mark.parametrize("bad", [[["a", 2, "e"]], [["a", 1]], [["a", "x", "e"]]])
def test_tracker_rejects_bad_state(bad: list) -> None:
    with pytest.raises(LsatDataError, match="user 'u' at position 0"):
        HistoryTracker.from_state({"u": bad})


def test_build_samples_ml100k(ml100k_dir: Path) -> None:
    dataset = load_dataset(ml100k_dir)
    samples = build_samples(dataset)
    assert len(samples) == 100_000 - 943 * HISTORY_LENGTH
    assert [s.timestamp for s in samples] == sorted(s.timestamp for s in samples)
    first = samples[0]
    earlier = [i for i in dataset.interactions if i.user_id == first.user_id][:HISTORY_LENGTH]
    assert first.history_item_ids == tuple(i.item_id for i in earlier)
    assert len({s.event_id for s in samples}) == len(samples)


def test_build_samples_on_toy_dataset() -> None:
    its = user_events("u", 4)
    assert [s.item_id for s in build_samples(Dataset("t", its, {}), length=3)] == ["u-3"]
