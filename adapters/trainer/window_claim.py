"""One decision per window: the short version registered first for a window is that window's.

A job checks the registry before it trains (:func:`.resume.registered_short`), which covers a
request delivered again after its trainer died. It does not cover a trainer that the consumer
group *presumed* dead while it still ran (paused past the session timeout, cut off from the
broker): the standby retrains the window, and when the old trainer wakes up both register a
short version of it. Version numbers follow commit order (the registry allocates ``max + 1``
under a unique constraint), so each trainer, *after* registering and *before* promoting, asks
whether an earlier version of the same window exists; if so its own is rejected as a duplicate
and never serves. Whichever order the two trainers interleave in, at most one of them promotes.

:func:`earlier_of` is the pure part:

>>> earlier_of([(5, "3"), (7, "4"), (6, "3")], "3", 6)
5
>>> earlier_of([(5, "3"), (7, "4")], "3", 5) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable

from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore

__all__ = ["earlier_of", "yield_to_earlier"]


def earlier_of(versions: Iterable[tuple[int, str]], window: str, version: int) -> int | None:
    """The lowest version number below ``version`` among ``(version, window)`` pairs of
    ``window``, else ``None``."""
    earlier = [v for v, w in versions if w == window and v < version]
    return min(earlier) if earlier else None


def yield_to_earlier(registry: RegistryStore, version: AdapterVersion) -> AdapterVersion | None:
    """Reject ``version`` (a just registered short version) when an earlier short version of
    its window exists, and return that one; ``None`` when ``version`` is its window's first."""
    windows = {str(w) for w in version.window_ids}
    pairs = [(o.version, str(w)) for o in registry.list(kind=version.kind) for w in o.window_ids]
    firsts = [f for w in windows if (f := earlier_of(pairs, w, version.version)) is not None]
    if not firsts:
        return None
    first = min(firsts)
    reason = f"duplicate: window already decided by {version.kind}/v{first}"
    registry.reject(version.kind, version.version, reason)
    return registry.get(version.kind, first)
