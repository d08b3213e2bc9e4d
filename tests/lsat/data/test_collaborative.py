"""Collaborative counts: prequential (no feature sees its own or a later event), exact, JSON."""

from __future__ import annotations

import json
import math
import random

import pytest

from lsat.data.collaborative import (
    FEATURE_COLUMNS,
    CollaborativeCounts,
    annotate_samples,
    build_annotated_samples,
    feature_columns,
)
from lsat.data.errors import LsatDataError
from lsat.data.samples import build_samples
from lsat.data.types import Dataset, Interaction, Sample


def random_stream(n: int, seed: int) -> list[Interaction]:
    rng = random.Random(seed)
    return [
        Interaction(f"u{rng.randrange(6)}", f"i{rng.randrange(9)}", t, rng.randrange(2))
        for t in range(n)
    ]


def brute_force(events: list[Interaction], user: str, item: str, window: int):
    """The features recomputed from scratch from ``events`` (all strictly earlier)."""
    user_ev = [e for e in events if e.user_id == user]
    item_ev = [e for e in events if e.item_id == item]
    likes = {}
    for e in events:
        likes[e.item_id] = likes.get(e.item_id, 0) + e.label
    pairs: dict[frozenset, int] = {}
    recent: dict[str, list[str]] = {}
    for e in events:
        if not e.label:
            continue
        mine = recent.setdefault(e.user_id, [])
        for j in mine:
            if j != e.item_id:
                key = frozenset((j, e.item_id))
                pairs[key] = pairs.get(key, 0) + 1
        if e.item_id in mine:
            mine.remove(e.item_id)
        mine.append(e.item_id)
        del mine[:-window]
    mine = [j for j in recent.get(user, []) if j != item]
    co = 0.0
    if likes.get(item, 0) and mine:
        co = sum(
            pairs.get(frozenset((item, j)), 0) / math.sqrt(likes[item] * likes[j]) for j in mine
        ) / len(mine)
    return (
        sum(e.label for e in user_ev),
        len(user_ev),
        sum(e.label for e in item_ev),
        len(item_ev),
        sum(e.label for e in events),
        len(events),
        co,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_features_equal_a_recount_of_strictly_earlier_events(seed: int) -> None:
    events = random_stream(120, seed)
    counts = CollaborativeCounts(co_like_window=3)
    for k, event in enumerate(events):
        f = counts.observe(event.user_id, event.item_id, event.label)
        expected = brute_force(events[:k], event.user_id, event.item_id, window=3)
        got = (
            f.user_likes,
            f.user_count,
            f.item_likes,
            f.item_count,
            f.global_likes,
            f.global_count,
        )
        assert got == expected[:6], k
        assert f.co_like == pytest.approx(expected[6]), k


@pytest.mark.parametrize("nth_sample", [0, 10, 47, -1])
def test_altering_the_event_itself_or_later_ones_never_changes_a_feature(nth_sample: int) -> None:
    events = random_stream(100, seed=5)
    before = build_annotated_samples(events, length=2)
    cut = before[nth_sample].timestamp  # a sample's own event is altered too
    rng = random.Random(cut)
    # flip the label of event `cut` and shuffle/alter everything after it
    later = [
        Interaction(e.user_id, f"i{rng.randrange(9)}", e.timestamp, 1 - e.label)
        for e in events[cut + 1 :]
    ]
    rng.shuffle(later)
    flipped = events[cut]
    altered = [
        *events[:cut],
        Interaction(flipped.user_id, flipped.item_id, flipped.timestamp, 1 - flipped.label),
        *later,
    ]
    after = build_annotated_samples(altered, length=2)
    # a sample's position in the list is its event's position among samples: compare those
    # whose event is at or before `cut` (their event ids are unchanged by construction)
    old = {s.event_id: s.collaborative for s in before if s.timestamp <= cut}
    new = {s.event_id: s.collaborative for s in after if s.timestamp <= cut}
    assert old and old == new
    assert before[nth_sample].event_id in new  # the altered event's own sample is compared


def test_annotated_samples_are_the_plain_samples_plus_features() -> None:
    events = random_stream(60, seed=3)
    annotated = build_annotated_samples(events, length=3)
    assert annotated == build_samples(Dataset("toy", events, {}), length=3)
    assert all(s.collaborative is not None for s in annotated)
    # every interaction is counted, also a user's first ones that give no sample
    assert annotated[-1].collaborative.global_count == len(events) - 1


def test_annotate_samples_counts_only_the_given_samples() -> None:
    samples = [Sample(str(t), "u", "i", t, 1, (), ()) for t in range(4)]
    counts = [s.collaborative.item_likes for s in annotate_samples(samples)]
    assert counts == [0, 1, 2, 3]


def test_state_round_trip_through_json_continues_identically() -> None:
    events = random_stream(80, seed=7)
    whole = CollaborativeCounts(co_like_window=4)
    resumed = CollaborativeCounts(co_like_window=4)
    for e in events[:40]:
        whole.learn_one(e.user_id, e.item_id, e.label)
        resumed.learn_one(e.user_id, e.item_id, e.label)
    resumed = CollaborativeCounts.from_state(json.loads(json.dumps(resumed.to_state())))
    for e in events[40:]:
        assert whole.observe(e.user_id, e.item_id, e.label) == resumed.observe(
            e.user_id, e.item_id, e.label
        )


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"version": 9}, "version 9"),
        ({"version": 1, "co_like_window": 2}, "malformed"),
    ],
)
def test_bad_state_is_refused(state: dict, message: str) -> None:
    with pytest.raises(LsatDataError, match=message):
        CollaborativeCounts.from_state(state)


def test_bad_label_and_window_are_refused() -> None:
    with pytest.raises(LsatDataError, match="label must be 0 or 1, got 2"):
        CollaborativeCounts().learn_one("u", "i", 2)
    with pytest.raises(LsatDataError, match="-1"):
        CollaborativeCounts(co_like_window=-1)


def test_window_zero_switches_co_like_off() -> None:
    counts = CollaborativeCounts(co_like_window=0)
    for user in "abc":
        counts.learn_one(user, "x", 1).learn_one(user, "y", 1)
    assert counts.features_before("a", "y").co_like == 0.0
    assert counts.to_state()["pairs"] == []


def test_feature_columns_need_annotated_samples_and_have_every_column() -> None:
    samples = build_annotated_samples(random_stream(50, seed=1), length=2)
    columns = feature_columns(samples)
    assert tuple(columns) == FEATURE_COLUMNS
    assert all(len(v) == len(samples) for v in columns.values())
    with pytest.raises(LsatDataError, match="no collaborative features"):
        feature_columns([Sample("e", "u", "i", 0, 1, (), ())])
