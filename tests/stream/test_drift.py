"""One contract suite over every drift detector, plus seeded change-point regressions."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from lsat.stream.drift import (
    ADWIN,
    DriftDetector,
    LabelRateShift,
    MixShift,
    PageHinkley,
    js_divergence,
    two_proportion_z,
)
from lsat.stream.errors import InvalidConfig

CHANGE_AT = 1500
LENGTH = 3000


def losses(seed: int, change: bool) -> list[float]:
    """Per-sample log-losses around 0.6, rising to 0.9 after CHANGE_AT when ``change``."""
    rng = random.Random(seed)
    return [
        max(0.0, rng.gauss(0.9 if change and i >= CHANGE_AT else 0.6, 0.25)) for i in range(LENGTH)
    ]


def labels(seed: int, change: bool) -> list[int]:
    """Like labels at rate 0.55, dropping to 0.35 after CHANGE_AT when ``change``."""
    rng = random.Random(seed)
    return [
        int(rng.random() < (0.35 if change and i >= CHANGE_AT else 0.55)) for i in range(LENGTH)
    ]


GENRES = ("Drama", "Comedy", "Action", "Thriller", "Romance", "Horror", "Sci-Fi", "Children")
BEFORE = (8, 7, 5, 4, 3, 1, 2, 2)
AFTER = (3, 3, 8, 7, 1, 4, 5, 1)


def genres(seed: int, change: bool) -> list[str]:
    """Genres of watched items; the mix moves towards action/horror after CHANGE_AT."""
    rng = random.Random(seed)
    return [
        rng.choices(GENRES, weights=AFTER if change and i >= CHANGE_AT else BEFORE)[0]
        for i in range(LENGTH)
    ]


@dataclass(frozen=True)
class Spec:
    """A detector under test: how to build it, its stream, its allowed delay, a bad input."""

    make: Callable[[], DriftDetector]
    stream: Callable[[int, bool], list[Any]]
    max_delay: int
    bad_input: Any


SPECS = {
    "page_hinkley": Spec(lambda: PageHinkley(threshold=25.0), losses, 150, math.nan),
    "adwin": Spec(lambda: ADWIN(delta=0.002), losses, 150, math.inf),
    "label_shift": Spec(lambda: LabelRateShift(500, 200, 100, 4.0, 3.0), labels, 300, 2),
    "mix_shift": Spec(lambda: MixShift(1000, 500, 200, 0.04, 0.03), genres, 450, None),
}
SEEDS = range(5)


@pytest.fixture(params=sorted(SPECS))
def spec(request: pytest.FixtureRequest) -> Spec:
    return SPECS[request.param]


def detections(detector: DriftDetector, stream: list[Any]) -> list[int]:
    return [i for i, x in enumerate(stream) if detector.update(x).drift_detected]


def test_update_returns_self_and_flags_are_bools(spec: Spec) -> None:
    detector = spec.make()
    assert isinstance(detector, DriftDetector)
    for x in spec.stream(0, True)[:50]:
        assert detector.update(x) is detector
        assert isinstance(detector.drift_detected, bool)
        assert isinstance(detector.warning_detected, bool)
        assert math.isfinite(detector.statistic)


def test_flags_are_read_only(spec: Spec) -> None:
    detector = spec.make()
    with pytest.raises(AttributeError):
        detector.drift_detected = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        detector.warning_detected = True  # type: ignore[misc]


@pytest.mark.parametrize("seed", SEEDS)
def test_detects_the_change_within_the_stated_delay(spec: Spec, seed: int) -> None:
    found = detections(spec.make(), spec.stream(seed, True))
    after = [i for i in found if i >= CHANGE_AT]
    assert not [i for i in found if i < CHANGE_AT], f"false alarm before the change: {found}"
    assert after, "the change was never detected"
    assert after[0] - CHANGE_AT <= spec.max_delay, f"detected at {after[0]}"


@pytest.mark.parametrize("seed", SEEDS)
def test_stationary_stream_of_the_same_length_gives_no_detection(spec: Spec, seed: int) -> None:
    assert detections(spec.make(), spec.stream(seed, False)) == []


def test_statistic_moves_with_the_change(spec: Spec) -> None:
    detector = spec.make()
    stream = spec.stream(0, True)
    for x in stream[:CHANGE_AT]:
        detector.update(x)
    before = abs(detector.statistic)
    peak = 0.0
    for x in stream[CHANGE_AT:]:
        peak = max(peak, abs(detector.update(x).statistic))
        if detector.drift_detected:
            break
    assert peak > before


def test_drift_flag_describes_the_last_update_only(spec: Spec) -> None:
    detector = spec.make()
    stream = spec.stream(0, True)
    first = detections(spec.make(), stream)[0]
    for x in stream[: first + 1]:
        detector.update(x)
    assert detector.drift_detected
    detector.update(stream[first + 1])
    assert not detector.drift_detected


def test_reset_forgets_everything(spec: Spec) -> None:
    stream = spec.stream(3, True)
    used = spec.make()
    detections(used, spec.stream(4, False)[:700])
    used.reset()
    assert (used.drift_detected, used.warning_detected) == (False, False)
    assert detections(used, stream) == detections(spec.make(), stream)


def test_bad_input_is_rejected_naming_the_value(spec: Spec) -> None:
    with pytest.raises(InvalidConfig, match=repr(spec.bad_input)):
        spec.make().update(spec.bad_input)


def test_snapshot_reports_statistic_and_flags(spec: Spec) -> None:
    detector = spec.make()
    for x in spec.stream(0, True)[:CHANGE_AT]:
        detector.update(x)
    snap = detector.snapshot()
    assert snap == {
        "statistic": detector.statistic,
        "drift": detector.drift_detected,
        "warning": detector.warning_detected,
    }


def test_label_shift_warns_before_it_drifts() -> None:
    detector = SPECS["label_shift"].make()
    assert isinstance(detector, LabelRateShift)
    warned = drifted = None
    for i, y in enumerate(labels(0, True)):
        detector.update(y)
        if detector.warning_detected and warned is None:
            warned = i
        if detector.drift_detected:
            drifted = i
            break
    assert warned is not None and drifted is not None and warned <= drifted
    recent, reference = detector.rates
    assert recent is not None and reference is not None and recent < reference


def test_label_shift_ignores_too_few_recent_labels() -> None:
    detector = LabelRateShift(reference_size=10, window_size=50, min_count=20)
    for y in [1] * 10 + [0] * 19:
        assert detector.update(y).statistic == 0.0
    assert detector.update(0).drift_detected  # the 20th recent label: 0 % vs 100 %


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LabelRateShift(window_size=10, min_count=20), "min_count"),
        (lambda: LabelRateShift(z_threshold=2, z_warning=3), "z_warning"),
        (lambda: MixShift(threshold=1.5), "threshold"),
        (lambda: MixShift(reference_size=0), "reference_size"),
        (lambda: PageHinkley(threshold=0), "threshold"),
        (lambda: PageHinkley(mode="sideways"), "sideways"),  # type: ignore[arg-type]
        (lambda: ADWIN(delta=2), "delta"),
    ],
)
def test_impossible_settings_are_rejected(make: Callable[[], DriftDetector], match: str) -> None:
    with pytest.raises(InvalidConfig, match=match):
        make()


@pytest.mark.parametrize(
    ("p", "q", "expected"),
    [
        ({"a": 1}, {"a": 9}, 0.0),
        ({"a": 1}, {"b": 1}, 1.0),
        ({"a": 1, "b": 1}, {"a": 1}, 0.311278),
    ],
)
def test_js_divergence_values(p: dict[str, int], q: dict[str, int], expected: float) -> None:
    assert js_divergence(p, q) == pytest.approx(expected, abs=1e-6)
    assert js_divergence(q, p) == pytest.approx(expected, abs=1e-6)


def test_js_divergence_rejects_empty_histograms() -> None:
    with pytest.raises(InvalidConfig, match="non-empty"):
        js_divergence({}, {"a": 1})


def test_two_proportion_z_is_antisymmetric() -> None:
    assert two_proportion_z(60, 100, 30, 100) == pytest.approx(-two_proportion_z(30, 100, 60, 100))
