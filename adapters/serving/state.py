"""The serving set: one immutable bundle of loaded adapters, swapped atomically by reference.

A request takes the current :class:`LoadedSet` once (:meth:`ServingState.acquire`) and scores
every number of its response with it, so a response never mixes versions. A swap replaces the
reference under a lock; the old set's adapters are deleted only once every request that took it
has finished (:meth:`ServingState.wait_idle`).

>>> state = ServingState()
>>> state.current is None
True
>>> s = LoadedSet(names={"long": "long-v1-0", "short": "short-v2-1"},
...               versions={"long": 1, "short": 2}, alpha=0.6)
>>> state.swap(s) is None
True
>>> with state.acquire() as held:
...     held.versions["short"], state.in_flight(s)
(2, 1)
>>> state.in_flight(s)
0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType

from lsat.adapters.model.errors import AdapterError

__all__ = ["LoadedSet", "NothingServing", "ServingError", "ServingState"]


class ServingError(AdapterError):
    """Root of the scorer's errors (bad requests, refused adapter sets, nothing to serve)."""


class NothingServing(ServingError):
    """No serving set is loaded yet (the registry had none and nothing was published)."""


@dataclass(frozen=True, eq=False)
class LoadedSet:
    """Adapters loaded in the recommender for one published serving set.

    ``names`` maps kind (long, short, merged) to the adapter name inside the recommender,
    ``versions`` kind to registry version, ``shas`` kind to the weights' sha256.
    """

    names: Mapping[str, str]
    versions: Mapping[str, int]
    alpha: float
    merge_weight: float | None = None
    window_id: int | str | None = None
    published_s: float | None = None
    shas: Mapping[str, str] = field(default_factory=dict)
    served_s: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", MappingProxyType(dict(self.names)))
        object.__setattr__(self, "versions", MappingProxyType(dict(self.versions)))
        object.__setattr__(self, "shas", MappingProxyType(dict(self.shas)))

    def describe(self) -> dict[str, object]:
        """What serves, as JSON-ready data (``GET /adapters``).

        >>> LoadedSet({"long": "a"}, {"long": 3}, 0.5, served_s=10.0).describe()["versions"]
        {'long': 3}
        """
        return {
            "versions": dict(self.versions),
            "sha256": dict(self.shas),
            "alpha": self.alpha,
            "merge_weight": self.merge_weight,
            "window_id": self.window_id,
            "published_s": self.published_s,
            "since_s": self.served_s,
        }

    def key(self) -> tuple[object, ...]:
        """Identity of the published content (versions, hashes, weights), not of the load."""
        return (
            tuple(sorted(self.versions.items())),
            tuple(sorted(self.shas.items())),
            self.alpha,
            self.merge_weight,
        )


class ServingState:
    """Holds the current :class:`LoadedSet` and counts the requests using each set."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._current: LoadedSet | None = None
        self._users: dict[int, int] = {}

    @property
    def current(self) -> LoadedSet | None:
        """The set new requests get (``None`` before the first swap)."""
        return self._current

    @contextmanager
    def acquire(self) -> Iterator[LoadedSet]:
        """The current set, counted as in use until the block exits."""
        with self._lock:
            held = self._current
            if held is None:
                raise NothingServing("no adapters are being served yet")
            self._users[id(held)] = self._users.get(id(held), 0) + 1
        try:
            yield held
        finally:
            with self._lock:
                left = self._users[id(held)] - 1
                if left:
                    self._users[id(held)] = left
                else:
                    del self._users[id(held)]
                self._lock.notify_all()

    def swap(self, new: LoadedSet) -> LoadedSet | None:
        """Make ``new`` current and return the set it replaced."""
        with self._lock:
            old, self._current = self._current, new
            return old

    def in_flight(self, loaded: LoadedSet) -> int:
        """How many requests are using ``loaded`` now."""
        with self._lock:
            return self._users.get(id(loaded), 0)

    def wait_idle(self, loaded: LoadedSet, timeout_s: float | None = None) -> bool:
        """Block until no request uses ``loaded``; False when ``timeout_s`` ran out first."""
        with self._lock:
            return self._lock.wait_for(lambda: id(loaded) not in self._users, timeout_s)
