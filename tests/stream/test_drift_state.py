"""State round trip over every drift detector: a detector saved mid-stream, passed through
strict JSON and restored detects at exactly the same indices as one that never stopped. Plus
parity with River for the two detectors that re-implement River's arithmetic."""

from __future__ import annotations

import json
import random

import pytest
from river import drift as river_drift
from test_drift import SPECS, Spec, detections

from lsat.stream.drift import ADWIN, DriftDetector, LabelRateShift, MixShift, PageHinkley
from lsat.stream.errors import InvalidConfig


@pytest.fixture(params=sorted(SPECS))
def spec(request: pytest.FixtureRequest) -> Spec:
    return SPECS[request.param]


def through_json(detector: DriftDetector) -> DriftDetector:
    """Save, serialise strictly (no NaN/inf: PostgreSQL's JSON), parse, restore."""
    text = json.dumps(detector.to_state(), allow_nan=False)
    return type(detector).from_state(json.loads(text))


def trace(detector: DriftDetector, stream: list) -> list[tuple[bool, bool, float]]:
    out = []
    for x in stream:
        detector.update(x)
        out.append((detector.drift_detected, detector.warning_detected, detector.statistic))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_restored_mid_stream_detects_at_the_same_indices(spec: Spec, seed: int) -> None:
    stream = spec.stream(seed, True) + spec.stream(seed + 10, False)
    reference = trace(spec.make(), stream)
    fired = [i for i, (drift, _, _) in enumerate(reference) if drift]
    assert fired, "the stream must contain a detection for the test to mean anything"
    # cut anywhere, including right on a detection (the re-base happens after restore)
    cuts = sorted({1, 17, len(stream) // 3, fired[0], fired[0] + 1, len(stream) - 2})
    for cut in cuts:
        first = spec.make()
        head = trace(first, stream[:cut])
        restored = through_json(first)
        assert restored.snapshot() == first.snapshot()
        assert head + trace(restored, stream[cut:]) == reference, f"diverged after cut {cut}"


def test_restoring_many_times_changes_nothing(spec: Spec) -> None:
    stream = spec.stream(1, True)
    detector = spec.make()
    found = []
    for i, x in enumerate(stream):
        if i % 97 == 0:
            detector = through_json(detector)
        if detector.update(x).drift_detected:
            found.append(i)
    assert found == detections(spec.make(), stream)


def test_state_keeps_the_configuration(spec: Spec) -> None:
    detector = spec.make()
    restored = through_json(detector)
    assert type(restored) is type(detector)
    assert restored.params() == detector.params()
    assert type(detector)(**detector.params()).params() == detector.params()


def test_a_state_of_another_detector_is_refused(spec: Spec) -> None:
    state = spec.make().to_state()
    other = PageHinkley if not isinstance(spec.make(), PageHinkley) else ADWIN
    with pytest.raises(InvalidConfig, match=state["detector"]):
        other.from_state(state)


@pytest.mark.parametrize(
    ("make", "patch"),
    [
        (ADWIN, {"width": 5}),  # the buckets hold 0 observations
        (LabelRateShift, {"recent": "01x"}),
        (LabelRateShift, {"reference_hits": 9, "reference_count": 3}),
        (MixShift, {"recent": [7]}),
        (PageHinkley, {"n": -1}),
        (PageHinkley, {"mean": "a lot"}),
    ],
)
def test_malformed_state_is_refused_echoing_it(make: type[DriftDetector], patch: dict) -> None:
    state = make().to_state()
    state["data"] = {**state["data"], **patch}
    with pytest.raises(InvalidConfig, match=make.__name__) as info:
        make.from_state(state)
    assert str(next(iter(patch.values())))[:3] in str(info.value)


def test_mix_state_needs_json_scalar_categories() -> None:
    detector = MixShift(reference_size=2, window_size=2, min_count=1)
    detector.update(("Drama", 1))
    with pytest.raises(InvalidConfig, match="Drama"):
        detector.to_state()


def seeded_losses(seed: int) -> list[float]:
    rng = random.Random(seed)
    period = rng.choice([300, 800, 2000])
    return [rng.gauss(0.4 + 0.4 * ((i // period) % 2), 0.2) for i in range(4000)]


@pytest.mark.parametrize("seed", range(8))
def test_adwin_and_page_hinkley_match_river_index_for_index(seed: int) -> None:
    stream = seeded_losses(seed)
    pairs = [
        (ADWIN(delta=0.01, clock=8), river_drift.ADWIN(delta=0.01, clock=8)),
        (
            PageHinkley(threshold=10.0, mode="both"),
            river_drift.PageHinkley(threshold=10.0, mode="both"),
        ),
    ]
    for ours, theirs in pairs:
        mine, river = [], []
        for i, x in enumerate(stream):
            if ours.update(x).drift_detected:
                mine.append(i)
            theirs.update(x)
            if theirs.drift_detected:
                river.append(i)
        assert mine, f"{ours.name}: no detection, nothing compared"
        assert mine == river, ours.name
    adwin, river_adwin = pairs[0]
    assert (adwin.width, adwin.statistic) == (river_adwin.width, river_adwin.estimation)
