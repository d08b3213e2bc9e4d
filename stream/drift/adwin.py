"""ADWIN (adaptive windowing) on a stream of numbers (per-sample losses), wrapping ``river.drift``.

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
from typing import Self

from river import drift as river_drift

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
        if not 0 < delta < 1 or clock < 1:
            raise InvalidConfig(f"need 0 < delta < 1 and clock >= 1, got {delta=}, {clock=}")
        self.delta, self.clock, self.max_buckets = delta, clock, max_buckets
        self.min_window_length, self.grace_period = min_window_length, grace_period
        self.reset()

    def reset(self) -> None:
        self._river = river_drift.ADWIN(
            delta=self.delta,
            clock=self.clock,
            max_buckets=self.max_buckets,
            min_window_length=self.min_window_length,
            grace_period=self.grace_period,
        )
        self._drift_detected = False

    def update(self, x: float) -> Self:
        if not math.isfinite(x):
            raise InvalidConfig(f"ADWIN needs finite values, got {x!r}")
        self._river.update(float(x))
        self._drift_detected = bool(self._river.drift_detected)
        return self

    @property
    def statistic(self) -> float:
        return float(self._river.estimation)

    @property
    def width(self) -> int:
        """How many observations the adaptive window holds."""
        return int(self._river.width)
