"""Period splits (equal counts / equal time spans), validation sizes, cold items."""

from __future__ import annotations

import pytest

from lsat.data.errors import LsatDataError
from lsat.data.periods import cold_mask, seen_item_ids, split_periods, validation_size
from lsat.data.types import Sample


def samples_at(times: list[int], items: list[str] | None = None) -> list[Sample]:
    items = items or [f"i{k}" for k in range(len(times))]
    return [Sample(f"e{k}", "u", items[k], t, k % 2, (), ()) for k, t in enumerate(times)]


@pytest.mark.parametrize(
    ("n_samples", "n_periods", "last_n", "sizes", "val_sizes"),
    [
        (10, 2, None, [5, 5], [1, 1]),
        (10, 3, None, [4, 3, 3], [1, 1, 1]),
        (100, 4, None, [25] * 4, [3, 3, 3, 3]),  # 2.5 rounds half up
        (100, 5, 40, [8] * 5, [1] * 5),
        (3, 3, None, [1, 1, 1], [0, 0, 0]),  # a single sample cannot also validate
        (4, 2, None, [2, 2], [1, 1]),  # two samples: one validates
    ],
)
def test_count_periods(n_samples, n_periods, last_n, sizes, val_sizes) -> None:
    samples = samples_at(list(range(n_samples)))
    periods = split_periods(samples, n_periods, last_n=last_n)
    assert [len(p) for p in periods] == sizes
    assert [len(p.validation) for p in periods] == val_sizes
    assert [p.index for p in periods] == list(range(n_periods))
    kept = samples[-last_n:] if last_n else samples
    assert [s for p in periods for s in p.samples] == kept
    for p in periods:
        assert p.train + p.validation == p.samples
        assert (p.start_ts, p.end_ts) == (p.samples[0].timestamp, p.samples[-1].timestamp)


def test_unsorted_input_is_sorted_stably_by_time() -> None:
    samples = samples_at([5, 1, 5, 0])
    (period,) = split_periods(samples, 1)
    assert [s.event_id for s in period.samples] == ["e3", "e1", "e0", "e2"]
    assert [s.event_id for s in period.validation] == ["e2"]


@pytest.mark.parametrize(
    ("times", "n_periods", "sizes", "bounds"),
    [
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 2, [5, 5], [(0, 4), (5, 9)]),
        ([0, 1, 2, 100], 4, [3, 0, 0, 1], [(0, 24), (25, 49), (50, 74), (75, 100)]),
        ([10, 10, 10], 1, [3], [(10, 10)]),
        ([7], 3, [0, 0, 1], [(7, 6), (7, 6), (7, 7)]),  # one instant: empty spans first
        ([0, 1], 3, [0, 1, 1], [(0, -1), (0, 0), (1, 1)]),  # fewer samples than periods
    ],
)
def test_time_periods(times, n_periods, sizes, bounds) -> None:
    periods = split_periods(samples_at(times), n_periods, by="time")
    assert [len(p) for p in periods] == sizes
    assert [(p.start_ts, p.end_ts) for p in periods] == bounds
    for p in periods:
        assert all(p.start_ts <= s.timestamp <= p.end_ts for s in p.samples)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_periods": 0}, "n_periods must be >= 1, got 0"),
        ({"n_periods": 11}, "cannot cut 10 samples into n_periods=11"),
        ({"n_periods": 2, "validation_fraction": 0.0}, "got 0.0"),
        ({"n_periods": 2, "validation_fraction": 1.0}, "got 1.0"),
        ({"n_periods": 2, "by": "month"}, "got 'month'"),
        ({"n_periods": 2, "last_n": 0}, "last_n must be >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs: dict, needle: str) -> None:
    with pytest.raises(LsatDataError, match=needle):
        split_periods(samples_at(list(range(10))), **kwargs)


def test_empty_samples() -> None:
    with pytest.raises(LsatDataError, match="empty"):
        split_periods([], 2, by="time")


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(0, 0.1, 0), (1, 0.5, 0), (2, 0.1, 1), (2, 0.9, 1), (10, 0.1, 1), (15, 0.1, 2), (20, 0.5, 10)],
)
def test_validation_size(n: int, fraction: float, expected: int) -> None:
    assert validation_size(n, fraction) == expected


def test_cold_mask_against_training_so_far() -> None:
    samples = samples_at(list(range(8)), ["a", "b", "a", "c", "d", "a", "c", "e"])
    first, second = split_periods(samples, 2, validation_fraction=0.25)
    seen = seen_item_ids([first])  # train part of period 0: a, b, a ("c" only validated)
    assert seen == {"a", "b"}
    assert seen_item_ids([first], include_validation=True) == {"a", "b", "c"}
    # second period: d (new), a (trained), c (only validated so far: still cold), e (new)
    assert cold_mask(second.samples, seen).tolist() == [True, False, True, True]
    assert cold_mask([], seen).shape == (0,)
