"""The serving set: one immutable bundle of loaded adapters, swapped atomically by reference.

A request takes the current :class:`LoadedSet` once (:meth:`ServingState.acquire`) and scores
every number of its response with it, so a response never mixes versions. A swap replaces the
reference under a lock and *retires* the adapter names the new set no longer uses: a retired
name is freed only once neither the current set nor any set a request still holds uses it
(:meth:`ServingState.retire`), so an adapter is never deleted under a running request.

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
>>> freed = []
>>> with state.acquire():
...     _ = state.swap(LoadedSet({"long": "long-v1-0"}, {"long": 1}, 0.6))
...     state.retire(["short-v2-1"], freed.extend), freed, state.pending_free()
(1, [], ('short-v2-1',))
>>> freed, state.pending_free()
(['short-v2-1'], ())
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType

from lsat.adapters.lifecycle.adapter_prompt import AdapterPrompt
from lsat.adapters.model.errors import AdapterError
from lsat.adapters.model.hybrid import HybridCombiner

__all__ = ["LoadedSet", "NothingServing", "Overloaded", "ServingError", "ServingState"]

log = logging.getLogger(__name__)

FreeNames = Callable[[list[str]], object]
"""Deletes adapters by name (called with the names once nothing uses them)."""


class ServingError(AdapterError):
    """Root of the scorer's errors (bad requests, refused adapter sets, nothing to serve)."""


class NothingServing(ServingError):
    """No serving set is loaded yet (the registry had none and nothing was published)."""


class Overloaded(ServingError):
    """The scorer is at its concurrency or queue limit; the API answers 503 + ``Retry-After``.

    ``retry_after_s`` is the client's suggested wait (whole seconds on the wire); ``reason``
    labels the refusal in metrics (``admission_full``, ``queue_full``, ``queue_timeout``, …).
    """

    def __init__(
        self, message: str, retry_after_s: float = 1.0, reason: str = "service_overloaded"
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason


@dataclass(frozen=True, eq=False)
class LoadedSet:
    """Adapters loaded in the recommender for one published serving set.

    ``names`` maps kind (long, short, merged) to the adapter name inside the recommender,
    ``versions`` kind to registry version, ``shas`` kind to the weights' sha256, ``prompts``
    kind to the prompt the adapter was trained with (default: TALLRec about movies);
    ``hybrid`` is the combiner served as the combined score (``None``: the α ensemble).
    """

    names: Mapping[str, str]
    versions: Mapping[str, int]
    alpha: float
    merge_weight: float | None = None
    window_id: int | str | None = None
    published_s: float | None = None
    shas: Mapping[str, str] = field(default_factory=dict)
    served_s: float = field(default_factory=time.time)
    prompts: Mapping[str, AdapterPrompt] = field(default_factory=dict)
    hybrid: HybridCombiner | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", MappingProxyType(dict(self.names)))
        object.__setattr__(self, "versions", MappingProxyType(dict(self.versions)))
        object.__setattr__(self, "shas", MappingProxyType(dict(self.shas)))
        object.__setattr__(self, "prompts", MappingProxyType(dict(self.prompts)))

    def prompt(self, kind: str) -> AdapterPrompt:
        """The prompt the ``kind`` adapter was trained with."""
        return self.prompts.get(kind, AdapterPrompt())

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
            "combined": "hybrid" if self.hybrid is not None else "ensemble",
            "hybrid": None if self.hybrid is None else self.hybrid.to_dict(),
        }

    def key(self) -> tuple[object, ...]:
        """Identity of the published content (versions, hashes, weights), not of the load."""
        return (
            tuple(sorted(self.versions.items())),
            tuple(sorted(self.shas.items())),
            self.alpha,
            self.merge_weight,
            None if self.hybrid is None else repr(self.hybrid.to_dict()),
        )


class ServingState:
    """Holds the current :class:`LoadedSet`, counts the requests using each set, and frees
    retired adapter names once nothing uses them."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._current: LoadedSet | None = None
        self._users: dict[int, tuple[LoadedSet, int]] = {}
        self._retired: list[tuple[str, FreeNames]] = []

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
            _, count = self._users.get(id(held), (held, 0))
            self._users[id(held)] = (held, count + 1)
        try:
            yield held
        finally:
            with self._lock:
                _, count = self._users[id(held)]
                if count > 1:
                    self._users[id(held)] = (held, count - 1)
                else:
                    del self._users[id(held)]
                due = self._collect()
                self._lock.notify_all()
            _free(due)

    def swap(self, new: LoadedSet) -> LoadedSet | None:
        """Make ``new`` current and return the set it replaced."""
        with self._lock:
            old, self._current = self._current, new
            return old

    def retire(self, names: Iterable[str], free: FreeNames) -> int:
        """Free ``names`` with ``free`` as soon as no set in use (current or held) has them.

        Returns how many of them are still in use and were deferred (0: all freed now). The
        deferred ones are freed by the thread whose request ends last.
        """
        with self._lock:
            self._retired.extend((name, free) for name in names)
            due = self._collect()
            deferred = len(self._retired)
        _free(due)
        return deferred

    def pending_free(self) -> tuple[str, ...]:
        """Retired adapter names still waiting for their last request."""
        with self._lock:
            return tuple(name for name, _ in self._retired)

    def _collect(self) -> list[tuple[str, FreeNames]]:
        """Take the retired names nothing uses any more (call with the lock held)."""
        sets = [loaded for loaded, _ in self._users.values()]
        if self._current is not None:
            sets.append(self._current)
        used = {name for loaded in sets for name in loaded.names.values()}
        due = [entry for entry in self._retired if entry[0] not in used]
        self._retired = [entry for entry in self._retired if entry[0] in used]
        return due

    def in_flight(self, loaded: LoadedSet) -> int:
        """How many requests are using ``loaded`` now."""
        with self._lock:
            return self._users.get(id(loaded), (loaded, 0))[1]

    def wait_idle(self, loaded: LoadedSet, timeout_s: float | None = None) -> bool:
        """Block until no request uses ``loaded``; False when ``timeout_s`` ran out first."""
        with self._lock:
            return self._lock.wait_for(lambda: id(loaded) not in self._users, timeout_s)


def _free(due: list[tuple[str, FreeNames]]) -> None:
    """Call each free function once with its names (outside the state lock)."""
    by_free: dict[int, tuple[FreeNames, list[str]]] = {}
    for name, free in due:
        by_free.setdefault(id(free), (free, []))[1].append(name)
    for free, names in by_free.values():
        try:
            free(names)
        except Exception:  # a failed delete must not fail the request that ended last
            log.exception("could not free retired adapters %s", names)
