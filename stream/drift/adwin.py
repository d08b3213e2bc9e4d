"""ADWIN (adaptive windowing, Bifet & Gavaldà 2007) on a stream of numbers (per-sample losses).

The window is kept as an exponential histogram: row ``i`` holds up to ``max_buckets`` buckets,
each summing ``2**i`` observations (total and variance), oldest first. Every ``clock`` updates
each split of the window into an older and a newer part is tested; when their means differ by
more than the Hoeffding-style bound, the oldest bucket is dropped and a drift is reported (the
next update then starts from an empty window, as River's does). Same arithmetic, in the same
order, as ``river.drift.ADWIN``, so both detect at the same indices (tested); this one can save
and restore its state (:meth:`to_state`), which River's Rust core cannot.

>>> import random
>>> rng = random.Random(0)
>>> detector = ADWIN()
>>> stream = [rng.gauss(0.3, 0.1) for _ in range(500)] + [rng.gauss(1.0, 0.1) for _ in range(500)]
>>> [i for i, x in enumerate(stream) if detector.update(x).drift_detected]
[543]
>>> round(detector.statistic, 1)  # the window's mean after the change
1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

from lsat.stream.drift.base import DriftDetector
from lsat.stream.errors import InvalidConfig

__all__ = ["ADWIN"]


class ADWIN(DriftDetector):
    """ADWIN drops the older part of its window when the two parts' means differ.

    ``statistic`` is the mean of the current adaptive window; ``width`` its length.
    """

    name = "adwin"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        super().__init__()
        if not 0 < delta < 1 or clock < 1 or max_buckets < 2:
            raise InvalidConfig(
                f"need 0 < delta < 1, clock >= 1, max_buckets >= 2; got {delta=}, {clock=}, "
                f"{max_buckets=}"
            )
        self.delta, self.clock, self.max_buckets = delta, clock, max_buckets
        self.min_window_length, self.grace_period = min_window_length, grace_period
        self.reset()

    def params(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "clock": self.clock,
            "max_buckets": self.max_buckets,
            "min_window_length": self.min_window_length,
            "grace_period": self.grace_period,
        }

    def reset(self) -> None:
        self._clear()
        self._drift_detected = False

    def _clear(self) -> None:
        self._rows: list[list[tuple[float, float]]] = [[]]
        self._width = 0
        self._total = 0.0
        self._variance = 0.0
        self._tick = 0

    def update(self, x: float) -> Self:
        if not math.isfinite(x):
            raise InvalidConfig(f"ADWIN needs finite values, got {x!r}")
        if self._drift_detected:  # start over after a detection, like River
            self._clear()
        self._insert(float(x))
        self._drift_detected = self._check_cuts()
        return self

    @property
    def statistic(self) -> float:
        return self._total / self._width if self._width else 0.0

    @property
    def width(self) -> int:
        """How many observations the adaptive window holds."""
        return self._width

    # --- the exponential histogram ------------------------------------------------------------

    def _insert(self, value: float) -> None:
        self._rows[0].append((value, 0.0))
        self._width += 1
        if self._width > 1:
            step = value - self._total / (self._width - 1)
            self._variance += (self._width - 1) * step * step / self._width
        self._total += value
        row = 0
        while len(self._rows[row]) > self.max_buckets:  # merge the two oldest into the next row
            size = float(1 << row)
            (t0, v0), (t1, v1) = self._rows[row][0], self._rows[row][1]
            mean0, mean1 = t0 / size, t1 / size
            merged = (t0 + t1, v0 + v1 + size * 0.5 * (mean0 - mean1) * (mean0 - mean1))
            if row + 1 == len(self._rows):
                self._rows.append([])
            self._rows[row + 1].append(merged)
            del self._rows[row][:2]
            row += 1

    def _drop_oldest(self) -> None:
        last = len(self._rows) - 1
        size = float(1 << last)
        total, variance = self._rows[last].pop(0)
        self._width -= int(size)
        self._total -= total
        shift = total / size - self._total / self._width
        self._variance -= variance + size * self._width * shift * shift / (size + self._width)
        if not self._rows[last] and last > 0:
            self._rows.pop()

    def _check_cuts(self) -> bool:
        self._tick += 1
        if self._tick % self.clock or self._width <= self.grace_period:
            return False
        detected = False
        while self._first_cut():
            detected = True
            self._drop_oldest()
        return detected

    def _first_cut(self) -> bool:
        """Whether some split (older part | newer part) of the window is a change point."""
        n_old, n_new = 0.0, float(self._width)
        sum_old, sum_new = 0.0, self._total
        least = self.min_window_length
        for row in range(len(self._rows) - 1, -1, -1):
            size = float(1 << row)
            buckets = self._rows[row]
            for k, (total, _) in enumerate(buckets):
                n_old, n_new = n_old + size, n_new - size
                sum_old, sum_new = sum_old + total, sum_new - total
                if row == 0 and k == len(buckets) - 1:
                    return False
                gap = sum_old / n_old - sum_new / n_new
                if n_new >= least and n_old >= least and self._is_cut(n_old, n_new, gap):
                    return True
        return False

    def _is_cut(self, n_old: float, n_new: float, gap: float) -> bool:
        log_term = math.log(2.0 * math.log(self._width) / self.delta)
        least = self.min_window_length
        harmonic = 1.0 / (n_old - least + 1.0) + 1.0 / (n_new - least + 1.0)
        bound = (
            math.sqrt(2.0 * harmonic * (self._variance / self._width) * log_term)
            + 2.0 / 3.0 * log_term * harmonic
        )
        return abs(gap) > bound

    # --- state --------------------------------------------------------------------------------

    def _dump(self) -> dict[str, Any]:
        return {
            "rows": [[list(bucket) for bucket in row] for row in self._rows],
            "width": self._width,
            "total": self._total,
            "variance": self._variance,
            "tick": self._tick,
        }

    def _load(self, data: Mapping[str, Any]) -> None:
        rows = [[(float(t), float(v)) for t, v in row] for row in data["rows"]]
        width = int(data["width"])
        held = sum(len(row) << i for i, row in enumerate(rows))
        if not rows or held != width or any(len(row) > self.max_buckets for row in rows):
            raise ValueError(f"buckets hold {held} observations, width says {width}")
        self._rows, self._width = rows, width
        self._total, self._variance = float(data["total"]), float(data["variance"])
        self._tick = int(data["tick"])
