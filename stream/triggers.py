"""Retrain requests (the ``adapter.retrain`` topic) and the rule for closing a window on drift.

A window closes as "full" or "span" (see :mod:`lsat.stream.windows`), on a manual request, or on
drift. Drift closes it early only once it holds :attr:`WindowPolicy.drift_close_min` samples
(a quarter of a full window unless configured; never fewer than the trainer needs); a drift
seen before that stays *pending* and closes the window as soon as it is big enough (or rides
along on whatever closes it first), so a detection is never dropped.

>>> from lsat.stream.windows import ClosedWindow
>>> closed = ClosedWindow(3, "drift", 100, 90, 180, 64, 1)
>>> request = RetrainRequest.from_closed(closed, drift={"label_shift": -4.2}, created_s=5.0)
>>> request.trigger, request.sample_count, request.request_id
('drift', 64, 'window-3')
>>> RetrainRequest.from_json(request.to_json()) == request
True
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lsat.stream.errors import InvalidEvent
from lsat.stream.windows import ClosedWindow, WindowPolicy, WindowState

__all__ = ["TRIGGERS", "RetrainRequest", "Trigger", "drift_close_due"]

Trigger = Literal["full", "span", "drift", "manual"]
TRIGGERS: tuple[str, ...] = ("full", "span", "drift", "manual")


def drift_close_due(state: WindowState, policy: WindowPolicy, pending: Mapping[str, float]) -> bool:
    """Whether pending drift should close the open window now.

    >>> policy = WindowPolicy(max_samples=100, min_samples_on_drift=20)
    >>> drift_close_due(WindowState(count=19), policy, {"adwin": 0.4})
    False
    >>> drift_close_due(WindowState(count=20), policy, {"adwin": 0.4})
    True
    >>> drift_close_due(WindowState(count=50), policy, {})
    False
    >>> drift_close_due(WindowState(count=3), WindowPolicy(max_samples=100), {"adwin": 0.4})
    False
    """
    return bool(pending) and state.count >= policy.drift_close_min


@dataclass(frozen=True, slots=True)
class RetrainRequest:
    """Ask the trainer for a short-term adapter on one closed window.

    ``drift`` maps each detector that fired for this window to its statistic at detection.
    ``request_id`` is stable per window, so a re-delivered request is recognisable.
    """

    window_id: int
    first_ts: int
    last_ts: int
    sample_count: int
    trigger: Trigger
    drift: dict[str, float] = field(default_factory=dict)
    created_s: float = 0.0

    @property
    def request_id(self) -> str:
        """``window-<id>``: one request per window."""
        return f"window-{self.window_id}"

    @classmethod
    def from_closed(
        cls,
        closed: ClosedWindow,
        *,
        drift: Mapping[str, float] | None = None,
        created_s: float | None = None,
    ) -> RetrainRequest:
        """The request for a window that just closed; its trigger is the close reason."""
        return cls(
            window_id=closed.window_id,
            first_ts=closed.first_ts,
            last_ts=closed.last_ts,
            sample_count=closed.count,
            trigger=closed.reason,
            drift=dict(drift or {}),
            created_s=time.time() if created_s is None else created_s,
        )

    def to_json(self) -> bytes:
        """UTF-8 JSON for the ``adapter.retrain`` topic."""
        return json.dumps({"request_id": self.request_id, **asdict(self)}).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> RetrainRequest:
        """Parse and check a request; a bad one raises ``InvalidEvent("bad_retrain_request")``."""
        try:
            data: dict[str, Any] = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidEvent("bad_retrain_request", f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidEvent("bad_retrain_request", f"not an object: {data!r:.60}")
        data.pop("request_id", None)
        _check_request(data)
        return cls(**data)


_INT_FIELDS = ("window_id", "first_ts", "last_ts", "sample_count")


def _check_request(data: dict[str, Any]) -> None:
    expected = set(RetrainRequest.__dataclass_fields__)
    if set(data) != expected:
        detail = f"fields {sorted(data)} differ from {sorted(expected)}"
        raise InvalidEvent("bad_retrain_request", detail)
    for name in _INT_FIELDS:
        value = data[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidEvent("bad_retrain_request", f"{name} must be an int ≥ 0, got {value!r}")
    if data["first_ts"] > data["last_ts"] or data["sample_count"] < 1:
        detail = f"empty or inverted window: {data['first_ts']}..{data['last_ts']}"
        raise InvalidEvent("bad_retrain_request", f"{detail}, count {data['sample_count']}")
    if data["trigger"] not in TRIGGERS:
        detail = f"trigger must be one of {TRIGGERS}, got {data['trigger']!r}"
        raise InvalidEvent("bad_retrain_request", detail)
    drift = data["drift"]
    if not isinstance(drift, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and math.isfinite(v)
        for k, v in drift.items()
    ):
        raise InvalidEvent("bad_retrain_request", f"drift must map names to numbers: {drift!r}")
    if not isinstance(data["created_s"], int | float):
        raise InvalidEvent("bad_retrain_request", f"created_s not a number: {data['created_s']!r}")
