"""The drift-detector contract shared by every detector in :mod:`lsat.stream.drift` (River's).

``update(x)`` returns the detector itself; ``drift_detected`` / ``warning_detected`` are
read-only and describe the last update only (a detector re-bases itself after a drift, like
River's); ``statistic`` is the current test statistic for metrics; ``reset()`` forgets all.
"""

from __future__ import annotations

import abc
from typing import Any, Self

from lsat.stream.errors import InvalidConfig

__all__ = ["DriftDetector", "check_block_sizes"]


class DriftDetector(abc.ABC):
    """Abstract base: subclasses implement :meth:`update`, :meth:`reset` and ``statistic``."""

    name: str = "drift"
    """Short label used in metrics and in retrain requests."""

    def __init__(self) -> None:
        self._drift_detected = False
        self._warning_detected = False

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a drift."""
        return self._drift_detected

    @property
    def warning_detected(self) -> bool:
        """Whether the last update raised a warning (False for detectors without one)."""
        return self._warning_detected

    @property
    @abc.abstractmethod
    def statistic(self) -> float:
        """The current value of the detector's test statistic (0.0 before enough data)."""

    @abc.abstractmethod
    def update(self, x: Any) -> Self:
        """Feed one observation; return ``self`` so calls chain."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget everything seen so far."""

    def snapshot(self) -> dict[str, float | bool]:
        """``{"statistic", "drift", "warning"}`` for metrics and retrain requests."""
        return {
            "statistic": float(self.statistic),
            "drift": self.drift_detected,
            "warning": self.warning_detected,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(statistic={self.statistic:.4g})"


def check_block_sizes(reference_size: int, window_size: int, min_count: int) -> None:
    """Validate a two-block detector's sizes (reference block vs sliding recent window).

    >>> check_block_sizes(5000, 2000, 1000)
    >>> check_block_sizes(10, 5, 6)
    Traceback (most recent call last):
    ...
    lsat.stream.errors.InvalidConfig: need reference_size >= 1 and 1 <= min_count <= window_size; got reference_size=10, window_size=5, min_count=6
    """  # noqa: E501
    if not 1 <= min_count <= window_size or reference_size < 1:
        raise InvalidConfig(
            f"need reference_size >= 1 and 1 <= min_count <= window_size; got "
            f"{reference_size=}, {window_size=}, {min_count=}"
        )
