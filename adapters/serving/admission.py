"""Admission control in front of the model: a bounded number of scoring calls run, a bounded
number wait, everyone else is refused at once with :class:`Overloaded` (503 + ``Retry-After``).

Runs in the server's event loop; the blocking call itself goes to a thread pool as large as the
concurrency limit, so at most ``max_concurrency`` threads ever touch the model.

>>> import asyncio
>>> gate = Admission(max_concurrency=1, max_queue=0, queue_timeout_s=1.0)
>>> asyncio.run(gate.run(sum, [1, 2]))
3
>>> gate.close()
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lsat.adapters.serving.state import Overloaded

__all__ = ["Admission"]

T = TypeVar("T")


class Admission:
    """At most ``max_concurrency`` calls run and ``max_queue`` wait (each at most
    ``queue_timeout_s``); the rest raise :class:`Overloaded` without waiting."""

    def __init__(
        self,
        max_concurrency: int,
        max_queue: int,
        queue_timeout_s: float,
        *,
        retry_after_s: float = 1.0,
        on_change: Callable[[int], object] | None = None,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self.on_change = on_change
        self.admitted = 0
        """Calls running or waiting now."""
        self._slots: asyncio.Semaphore | None = None
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="scorer-model")

    def _changed(self, delta: int) -> None:
        self.admitted += delta
        if self.on_change is not None:
            self.on_change(self.admitted)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the pool once a slot is free; :class:`Overloaded` when the queue
        is full or the wait exceeded ``queue_timeout_s``."""
        if self._slots is None:  # created in the loop that uses it
            self._slots = asyncio.Semaphore(self.max_concurrency)
        if self.admitted >= self.max_concurrency + self.max_queue:
            raise Overloaded(
                f"scorer busy: {self.max_concurrency} running and {self.max_queue} queued",
                self.retry_after_s,
                "admission_full",
            )
        self._changed(+1)
        try:
            try:
                await asyncio.wait_for(self._slots.acquire(), self.queue_timeout_s)
            except TimeoutError:
                raise Overloaded(
                    f"scorer busy: no slot within {self.queue_timeout_s:g}s",
                    self.retry_after_s,
                    "admission_timeout",
                ) from None
            try:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._pool, functools.partial(fn, *args))
            finally:
                self._slots.release()
        finally:
            self._changed(-1)

    def close(self) -> None:
        """Stop the pool (running calls finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
