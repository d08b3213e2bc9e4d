"""The drift-detector contract shared by every detector in :mod:`stream.drift` (River's).

``update(x)`` returns the detector itself; ``drift_detected`` / ``warning_detected`` are
read-only and describe the last update only (a detector re-bases itself after a drift, like
River's); ``statistic`` is the current test statistic for metrics; ``reset()`` forgets all.
"""

from __future__ import annotations

import abc
from typing import Any, Self

__all__ = ["DriftDetector"]


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
