"""Page-Hinkley test on a stream of numbers (per-sample losses), wrapping ``river.drift``.

>>> import random
>>> rng = random.Random(0)
>>> detector = PageHinkley(threshold=20.0)
>>> stream = [rng.gauss(0.3, 0.1) for _ in range(500)] + [rng.gauss(1.0, 0.1) for _ in range(500)]
>>> [i for i, x in enumerate(stream) if detector.update(x).drift_detected]
[527]
"""

from __future__ import annotations

import math
from typing import Literal, Self

from river import drift as river_drift

from lsat.stream.drift.base import DriftDetector
from lsat.stream.errors import InvalidConfig

__all__ = ["PageHinkley"]


class PageHinkley(DriftDetector):
    """Page-Hinkley on the running mean; ``mode="up"`` (default) watches for rising losses.

    ``statistic`` is the cumulative deviation the test compares with ``threshold``.
    """

    name = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 1e-4,
        mode: Literal["up", "down", "both"] = "up",
    ) -> None:
        super().__init__()
        if threshold <= 0 or not 0 < alpha <= 1 or min_instances < 1:
            raise InvalidConfig(
                f"need threshold > 0, 0 < alpha <= 1, min_instances >= 1; got {threshold=}, "
                f"{alpha=}, {min_instances=}"
            )
        if mode not in ("up", "down", "both"):
            raise InvalidConfig(f"mode must be 'up', 'down' or 'both', got {mode!r}")
        self.min_instances, self.delta, self.threshold = min_instances, delta, threshold
        self.alpha, self.mode = alpha, mode
        self.reset()

    def reset(self) -> None:
        self._river = river_drift.PageHinkley(
            min_instances=self.min_instances,
            delta=self.delta,
            threshold=self.threshold,
            alpha=self.alpha,
            mode=self.mode,
        )
        self._drift_detected = False
        self._statistic = 0.0

    def update(self, x: float) -> Self:
        if not math.isfinite(x):
            raise InvalidConfig(f"PageHinkley needs finite values, got {x!r}")
        self._river.update(float(x))
        self._drift_detected = bool(self._river.drift_detected)
        # River keeps the two cumulative sums privately; read them for the metric.
        river = self._river
        up = river._sum_increase - river._min_increase
        down = river._max_decrease - river._sum_decrease
        up, down = (v if math.isfinite(v) else 0.0 for v in (up, down))
        self._statistic = {"up": up, "down": down, "both": max(up, down)}[self.mode]
        return self

    @property
    def statistic(self) -> float:
        return self._statistic
