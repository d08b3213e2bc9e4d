"""The drift-detector contract shared by every detector in :mod:`lsat.stream.drift` (River's).

``update(x)`` returns the detector itself; ``drift_detected`` / ``warning_detected`` are
read-only and describe the last update only (a detector re-bases itself after a drift, like
River's); ``statistic`` is the current test statistic for metrics; ``reset()`` forgets all.

State round trip: :meth:`DriftDetector.to_state` gives plain JSON (no NaN or infinity, so
PostgreSQL's JSON takes it) with the detector's class, its constructor arguments and what it
has learned; :meth:`DriftDetector.from_state` rebuilds it. A restored detector continues the
stream exactly where the saved one stood: it detects at the same indices as one that never
stopped. The stream worker saves it with the window state, in the same transaction.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from typing import Any, Self

from lsat.stream.errors import InvalidConfig

__all__ = ["DriftDetector", "check_block_sizes"]


class DriftDetector(abc.ABC):
    """Abstract base: subclasses implement :meth:`update`, :meth:`reset`, ``statistic``,
    :meth:`params` and the ``_dump`` / ``_load`` pair behind :meth:`to_state`."""

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

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """The constructor arguments: ``type(d)(**d.params())`` is a fresh detector like ``d``."""

    @abc.abstractmethod
    def _dump(self) -> dict[str, Any]:
        """What the detector has learned, in JSON types (finite floats only)."""

    @abc.abstractmethod
    def _load(self, data: Mapping[str, Any]) -> None:
        """Inverse of :meth:`_dump`, into a freshly built detector; raise on a bad value."""

    def to_state(self) -> dict[str, Any]:
        """``{"detector", "params", "drift", "warning", "data"}``: JSON, for :meth:`from_state`."""
        return {
            "detector": type(self).__name__,
            "params": self.params(),
            "drift": self._drift_detected,
            "warning": self._warning_detected,
            "data": self._dump(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """A detector of this class, built with the saved arguments, that continues exactly
        where ``state`` was saved.

        Raises :class:`InvalidConfig` (echoing the state) for another class's state or a
        malformed one.
        """
        _check_kind(cls, state)
        try:
            detector = cls(**state["params"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidConfig(f"bad {cls.__name__} state ({exc}): {_short(state)}") from None
        return detector.load_state(state)

    def load_state(self, state: Mapping[str, Any]) -> Self:
        """Continue, in place, from ``state``, saved by a detector with the same class and
        arguments (:class:`InvalidConfig` otherwise, and the detector is left reset)."""
        name = type(self).__name__
        _check_kind(type(self), state)
        if state.get("params") != self.params():
            raise InvalidConfig(
                f"{name} state saved with {_short(state.get('params'))}, this one has "
                f"{_short(self.params())}"
            )
        self.reset()
        try:
            self._load(state["data"])
            drift, warning = state["drift"], state["warning"]
            if not isinstance(drift, bool) or not isinstance(warning, bool):
                raise ValueError(f"flags must be booleans, got {drift!r}, {warning!r}")
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.reset()
            data = state.get("data")
            raise InvalidConfig(f"bad {name} state ({exc}); data {_short(data)}") from None
        self._drift_detected, self._warning_detected = drift, warning
        return self

    def snapshot(self) -> dict[str, float | bool]:
        """``{"statistic", "drift", "warning"}`` for metrics and retrain requests."""
        return {
            "statistic": float(self.statistic),
            "drift": self.drift_detected,
            "warning": self.warning_detected,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(statistic={self.statistic:.4g})"


def _check_kind(cls: type, state: Any) -> None:
    if not isinstance(state, Mapping) or state.get("detector") != cls.__name__:
        raise InvalidConfig(f"not a {cls.__name__} state: {_short(state)}")


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 200 else f"{text[:200]}…"


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
