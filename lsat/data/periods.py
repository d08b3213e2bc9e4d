"""Cut time-sorted samples into periods (the LSAT paper's protocol) and flag cold items.

Samples are sorted by time (stable, so equal timestamps keep their order), the last ``last_n``
are kept, and they are cut into ``n_periods`` periods of equal counts (ML-1M) or equal time
spans (Amazon). Within a period the first part trains and the last ``validation_fraction``
(at least one sample once a period has two) validates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lsat.data.errors import LsatDataError
from lsat.data.types import Sample

__all__ = ["Period", "cold_mask", "seen_item_ids", "split_periods", "validation_size"]


@dataclass(frozen=True, slots=True)
class Period:
    """One period: its samples in time order and their train/validation split.

    ``start_ts`` / ``end_ts`` bound the period inclusively: the first and last sample times
    for count periods, the span's bounds for time periods (an empty span has no samples).
    """

    index: int
    samples: tuple[Sample, ...]
    train: tuple[Sample, ...]
    validation: tuple[Sample, ...]
    start_ts: int
    end_ts: int

    def __len__(self) -> int:
        return len(self.samples)


def validation_size(n_samples: int, fraction: float) -> int:
    """How many of a period's samples validate: ``fraction`` rounded, ≥ 1 when ``n ≥ 2``.

    >>> [validation_size(n, 0.1) for n in (0, 1, 2, 9, 15, 100)]
    [0, 0, 1, 1, 2, 10]
    """
    if n_samples < 2:
        return 0
    return min(n_samples - 1, max(1, math.floor(n_samples * fraction + 0.5)))


def _period(index: int, samples: Sequence[Sample], fraction: float, start: int, end: int) -> Period:
    n_val = validation_size(len(samples), fraction)
    cut = len(samples) - n_val
    return Period(index, tuple(samples), tuple(samples[:cut]), tuple(samples[cut:]), start, end)


def split_periods(
    samples: Iterable[Sample],
    n_periods: int,
    *,
    by: Literal["count", "time"] = "count",
    last_n: int | None = None,
    validation_fraction: float = 0.1,
) -> list[Period]:
    """Cut samples into ``n_periods`` periods of equal counts or equal time spans.

    Count periods differ in size by at most one sample (earlier periods take the extra).
    Time periods split ``[first ts, last ts]`` into equal integer spans; some may be empty
    (so there may be fewer samples than periods).

    >>> from lsat.data.types import Sample
    >>> ss = [Sample(str(t), "u", "i", t, 1, (), ()) for t in range(10)]
    >>> [(len(p.train), len(p.validation)) for p in split_periods(ss, 3, last_n=9)]
    [(2, 1), (2, 1), (2, 1)]
    >>> [(p.start_ts, p.end_ts, len(p)) for p in split_periods(ss, 2, by="time")]
    [(0, 4, 5), (5, 9, 5)]
    """
    if n_periods < 1:
        raise LsatDataError(f"n_periods must be >= 1, got {n_periods}")
    if not 0 < validation_fraction < 1:
        raise LsatDataError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if by not in ("count", "time"):
        raise LsatDataError(f"by must be 'count' or 'time', got {by!r}")
    ordered = sorted(samples, key=lambda s: s.timestamp)
    if last_n is not None:
        if last_n < 1:
            raise LsatDataError(f"last_n must be >= 1, got {last_n}")
        ordered = ordered[-last_n:]
    if not ordered:
        raise LsatDataError("cannot cut an empty sample list into periods")
    if by == "count" and len(ordered) < n_periods:
        raise LsatDataError(
            f"cannot cut {len(ordered)} samples into n_periods={n_periods} periods of equal counts"
        )
    if by == "count":
        base, extra = divmod(len(ordered), n_periods)
        periods, begin = [], 0
        for k in range(n_periods):
            part = ordered[begin : begin + base + (k < extra)]
            begin += len(part)
            periods.append(
                _period(k, part, validation_fraction, part[0].timestamp, part[-1].timestamp)
            )
        return periods
    first, last = ordered[0].timestamp, ordered[-1].timestamp
    span = last - first + 1
    edges = [first + (k * span) // n_periods for k in range(n_periods + 1)]
    times = np.fromiter((s.timestamp for s in ordered), dtype=np.int64, count=len(ordered))
    cuts = np.searchsorted(times, edges, side="left")
    return [
        _period(k, ordered[cuts[k] : cuts[k + 1]], validation_fraction, edges[k], edges[k + 1] - 1)
        for k in range(n_periods)
    ]


def seen_item_ids(periods: Iterable[Period], *, include_validation: bool = False) -> set[str]:
    """Target item ids of the periods' training samples (optionally also validation)."""
    seen: set[str] = set()
    for period in periods:
        seen.update(s.item_id for s in period.train)
        if include_validation:
            seen.update(s.item_id for s in period.validation)
    return seen


def cold_mask(samples: Sequence[Sample], seen_item_ids: set[str]) -> np.ndarray:
    """True where a sample's target item never appeared in the training data so far.

    >>> from lsat.data.types import Sample
    >>> ss = [Sample("e", "u", i, 0, 1, (), ()) for i in ("a", "b")]
    >>> cold_mask(ss, {"a"}).tolist()
    [False, True]
    """
    return np.fromiter(
        (s.item_id not in seen_item_ids for s in samples), dtype=bool, count=len(samples)
    )
