"""Hand the scorer's freed native memory back to the operating system.

Every micro-batch allocates and frees tensors of new sizes (its candidates, their suffix lengths
and each user's prefix length differ), and glibc's malloc keeps what is freed in its arenas:
freed blocks between live ones stay resident, and after a large block is freed glibc raises its
mmap threshold, so later large tensors land in the arenas too. Under concurrent load the scorer's
resident memory grew by hundreds of MB while the memory in use did not: ``malloc_trim(0)``
returned all of it (measured, see ``bench/results/load.md``). :class:`MemoryTrimmer` calls it
on the model's thread once a batch's answers are out, at most once every ``interval_s`` seconds.

Where the C library has no ``malloc_trim`` (musl, macOS) the trimmer does nothing.

What stays in use still grows a little with every new tensor shape: oneDNN (bf16 matmuls on CPU)
caches a compiled primitive per shape, 1,024 of them by default. :func:`limit_primitive_cache`
lowers that to ``PRIMITIVE_CACHE_CAPACITY`` for the scorer process (measured: no slower, and the
memory in use stopped growing); ``lsat serve`` calls it before the model runs.

>>> clock = iter([0.0, 5.0, 12.0]).__next__
>>> trimmer = MemoryTrimmer(10.0, trim=lambda: None, clock=clock)
>>> [trimmer.maybe_trim(), trimmer.maybe_trim(), trimmer.maybe_trim()], trimmer.trims
([True, False, True], 2)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, MutableMapping

__all__ = ["PRIMITIVE_CACHE_CAPACITY", "MemoryTrimmer", "limit_primitive_cache", "malloc_trim"]

log = logging.getLogger(__name__)

PRIMITIVE_CACHE_CAPACITY = 64
"""oneDNN primitives the scorer keeps compiled (oneDNN's default: 1,024)."""
ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"


@functools.cache
def _libc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # a ctypes function: int -> int


def malloc_trim() -> bool | None:
    """Return free heap memory of every malloc arena to the OS (glibc ``malloc_trim(0)``).

    True when memory was released, False when there was none, None without ``malloc_trim``.
    """
    trim = _libc_trim()
    return None if trim is None else bool(trim(0))


def limit_primitive_cache(
    capacity: int = PRIMITIVE_CACHE_CAPACITY, environ: MutableMapping[str, str] | None = None
) -> str:
    """Set ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` unless the environment already does; the value in
    effect. oneDNN reads it when it first creates a primitive, so call this before the model runs.

    >>> env = {}
    >>> limit_primitive_cache(64, env), limit_primitive_cache(8, env)
    ('64', '64')
    """
    environ = os.environ if environ is None else environ
    return environ.setdefault(ONEDNN_CACHE_VARIABLE, str(capacity))


class MemoryTrimmer:
    """Calls ``trim`` (default :func:`malloc_trim`) at most once per ``interval_s`` seconds;
    ``interval_s=None`` never trims."""

    def __init__(
        self,
        interval_s: float | None = 1.0,
        *,
        trim: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s is not None and interval_s < 0:
            raise ValueError(f"interval_s must be >= 0 or None, got {interval_s}")
        self.interval_s = interval_s
        self.trim = trim or malloc_trim
        self.clock = clock
        self.trims = 0
        """Trims run so far."""
        self.seconds = 0.0
        """Time spent trimming so far."""
        self._last: float | None = None
        self._lock = threading.Lock()

    def maybe_trim(self) -> bool:
        """Trim when ``interval_s`` has passed since the last trim (or none ran yet)."""
        if self.interval_s is None:
            return False
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.interval_s:
                return False
            self._last = now
            started = time.perf_counter()
            try:
                self.trim()
            except Exception as exc:  # never fail a request over housekeeping
                log.warning("memory trim failed: %s", exc)
                return False
            self.seconds += time.perf_counter() - started
            self.trims += 1
            return True
