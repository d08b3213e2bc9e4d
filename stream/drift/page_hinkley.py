"""Page-Hinkley test on a stream of numbers (per-sample losses).

Each value's deviation from the running mean (minus ``delta``) accumulates with forgetting
factor ``alpha``; a drift is reported when the sum has risen (``mode="up"``) or fallen
(``"down"``) more than ``threshold`` from its extreme, once ``min_instances`` values are in.
After a drift the next update starts over. Same arithmetic as ``river.drift.PageHinkley``, so
both detect at the same indices (tested); this one saves and restores its state.

>>> import random
>>> rng = random.Random(0)
>>> detector = PageHinkley(threshold=20.0)
>>> stream = [rng.gauss(0.3, 0.1) for _ in range(500)] + [rng.gauss(1.0, 0.1) for _ in range(500)]
>>> [i for i, x in enumerate(stream) if detector.update(x).drift_detected]
[527]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Self

from lsat.stream.drift.base import DriftDetector
from lsat.stream.errors import InvalidConfig

__all__ = ["PageHinkley"]

_MODES = ("up", "down", "both")


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
        if mode not in _MODES:
            raise InvalidConfig(f"mode must be 'up', 'down' or 'both', got {mode!r}")
        self.min_instances, self.delta, self.threshold = min_instances, delta, threshold
        self.alpha, self.mode = alpha, mode
        self.reset()

    def params(self) -> dict[str, Any]:
        return {
            "min_instances": self.min_instances,
            "delta": self.delta,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "mode": self.mode,
        }

    def reset(self) -> None:
        self._clear()
        self._drift_detected = False

    def _clear(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._sum_up = self._sum_down = 0.0
        self._min_up: float | None = None  # None: no value yet (River starts at +inf)
        self._max_down = -1.0  # River's starting value
        self._statistic = 0.0

    def update(self, x: float) -> Self:
        if not math.isfinite(x):
            raise InvalidConfig(f"PageHinkley needs finite values, got {x!r}")
        if self._drift_detected:  # start over after a detection, like River
            self._clear()
            self._drift_detected = False
        x = float(x)
        self._n += 1
        self._mean += (1.0 / self._n) * (x - self._mean)
        deviation = x - self._mean
        self._sum_up = self.alpha * self._sum_up + deviation - self.delta
        self._sum_down = self.alpha * self._sum_down + deviation + self.delta
        if self._min_up is None or self._sum_up < self._min_up:
            self._min_up = self._sum_up
        self._max_down = max(self._max_down, self._sum_down)
        up, down = self._sum_up - self._min_up, self._max_down - self._sum_down
        self._statistic = {"up": up, "down": down, "both": max(up, down)}[self.mode]
        if self._n >= self.min_instances:
            self._drift_detected = self._statistic > self.threshold
        return self

    @property
    def statistic(self) -> float:
        return self._statistic

    def _dump(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "mean": self._mean,
            "sum_up": self._sum_up,
            "sum_down": self._sum_down,
            "min_up": self._min_up,
            "max_down": self._max_down,
            "statistic": self._statistic,
        }

    def _load(self, data: Mapping[str, Any]) -> None:
        self._n = int(data["n"])
        if self._n < 0:
            raise ValueError(f"n must be >= 0, got {self._n}")
        self._mean, self._statistic = float(data["mean"]), float(data["statistic"])
        self._sum_up, self._sum_down = float(data["sum_up"]), float(data["sum_down"])
        self._min_up = None if data["min_up"] is None else float(data["min_up"])
        self._max_down = float(data["max_down"])
