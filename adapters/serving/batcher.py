"""Micro-batching: one worker thread in front of the model runs concurrent requests together.

Callers :meth:`MicroBatcher.submit` a job and block until its result. The worker takes the
first waiting job, waits at most ``window_ms`` for more (none when the queue already holds
some), and hands up to ``max_batch_items`` items' worth of jobs to ``run_batch`` in one call;
jobs that arrive while a batch runs are taken together by the next one; ``after_batch`` runs on
the worker once a batch's results are delivered (housekeeping off the requests' path). The queue
is bounded:
a full queue raises :class:`~lsat.adapters.serving.state.Overloaded` at once (HTTP 503), and a
job still waiting after ``timeout_s`` is withdrawn and raises it too. When a batch fails, its
jobs are retried one by one, so one bad request cannot fail the others.

``own_thread=False``: no worker thread is started; the caller runs the loop with
:meth:`MicroBatcher.serve` (blocking until :meth:`MicroBatcher.close`). ``lsat serve`` runs the
model that way on the process's main thread: with libgomp (torch's CPU OpenMP), a parallel
region opened from any other thread is throttled to a short spin whenever the process has more
OpenMP threads than CPUs, and every op then pays a thread wake-up — measured on a 2-core CPU,
one ``/score`` took twice as long from a worker thread (``bench/results/recommend.md``).

>>> batcher = MicroBatcher(lambda jobs: [2 * j for j in jobs], window_ms=1)
>>> batcher.submit(21)
42
>>> batcher.close()
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

from lsat.adapters.serving.state import Overloaded

__all__ = ["MicroBatcher"]

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")
_STOP = object()


class _Pending(Generic[J, R]):
    __slots__ = ("future", "job", "size")

    def __init__(self, job: J, size: int) -> None:
        self.job = job
        self.size = size
        self.future: Future[R] = Future()


class MicroBatcher(Generic[J, R]):
    """Runs ``run_batch(jobs) -> results`` (one result per job, same order) on one thread.

    ``size_of(job)`` counts a job's items (default 1) against ``max_batch_items``; a single job
    larger than that still runs, alone.
    """

    def __init__(
        self,
        run_batch: Callable[[list[J]], Sequence[R]],
        *,
        window_ms: float = 5.0,
        queue_limit: int = 64,
        max_batch_items: int = 256,
        timeout_s: float | None = 60.0,
        retry_after_s: float = 1.0,
        size_of: Callable[[J], int] | None = None,
        after_batch: Callable[[], object] | None = None,
        name: str = "scorer-batcher",
        own_thread: bool = True,
    ) -> None:
        if window_ms < 0:
            raise ValueError(f"window_ms must be >= 0, got {window_ms}")
        if queue_limit < 1 or max_batch_items < 1:
            raise ValueError(
                f"queue_limit and max_batch_items must be >= 1, got {queue_limit}, "
                f"{max_batch_items}"
            )
        self.run_batch = run_batch
        self.window_s = window_ms / 1000
        self.queue_limit = queue_limit
        self.max_batch_items = max_batch_items
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.size_of = size_of or (lambda _job: 1)
        self.after_batch = after_batch
        self.batches = 0
        """Batches run so far (a batch of several jobs shares one ``run_batch`` call)."""
        self.jobs = 0
        """Jobs completed so far."""
        self.running = 0
        """Jobs in the batch that runs now."""
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_limit)
        self._carry: _Pending | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._serving = threading.Event()
        self._thread: threading.Thread | None = None
        if own_thread:
            self._thread = threading.Thread(target=self.serve, name=name, daemon=True)
            self._thread.start()

    @property
    def waiting(self) -> int:
        """Jobs queued now (not counting the batch that runs)."""
        return self._queue.qsize()

    def submit(self, job: J) -> R:
        """Run ``job`` in the next batch and return its result (or raise its exception)."""
        pending: _Pending[J, R] = _Pending(job, max(1, int(self.size_of(job))))
        with self._lock:
            if self._closed:
                raise Overloaded("scorer is shutting down", self.retry_after_s, "closed")
            try:
                self._queue.put_nowait(pending)
            except queue.Full:
                raise Overloaded(
                    f"scoring queue full ({self.queue_limit} requests waiting)",
                    self.retry_after_s,
                    "queue_full",
                ) from None
        try:
            return pending.future.result(self.timeout_s)
        except FutureTimeout:
            if pending.future.cancel():  # still queued: withdrawn, never runs
                raise Overloaded(
                    f"request waited {self.timeout_s:g}s for the model",
                    self.retry_after_s,
                    "queue_timeout",
                ) from None
            return pending.future.result()  # already running: its result comes soon
        except CancelledError:
            raise Overloaded("scorer is shutting down", self.retry_after_s, "closed") from None

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop taking jobs, let the worker finish the queued ones, and stop it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def serve(self) -> None:
        """Run batches in the calling thread until :meth:`close` (what the worker thread runs;
        with ``own_thread=False`` the caller's job). Only one loop may run."""
        if self._serving.is_set():
            raise RuntimeError("this batcher's loop is already running")
        self._serving.set()
        try:
            self._work()
        finally:
            self._serving.clear()

    # ---- worker -------------------------------------------------------------------------------
    def _next(self, timeout_s: float | None) -> object | None:
        if self._carry is not None:
            carried, self._carry = self._carry, None
            return carried
        try:
            return self._queue.get(timeout=timeout_s) if timeout_s else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        """``first`` plus what arrives within the window, up to the item budget."""
        batch, used, stop = [first], first.size, False
        deadline = time.monotonic() + self.window_s
        while used < self.max_batch_items:
            item = self._next(max(0.0, deadline - time.monotonic()))
            if item is None:
                break
            if not isinstance(item, _Pending):  # the stop marker
                stop = True
                break
            if used + item.size > self.max_batch_items:
                self._carry = item
                break
            batch.append(item)
            used += item.size
        return batch, stop

    def _work(self) -> None:
        stop = False
        while not stop or self._carry is not None:
            first = self._next(None) if self._carry is not None else self._queue.get()
            if first is _STOP:
                stop = True
                continue
            assert isinstance(first, _Pending)  # the queue holds requests and the stop marker
            batch, stop_seen = self._collect(first)
            stop = stop or stop_seen
            live = [p for p in batch if p.future.set_running_or_notify_cancel()]
            self.running = len(live)
            if live:
                self._run(live)
            self.running = 0
            if live and self.after_batch is not None:
                try:
                    self.after_batch()
                except Exception as exc:  # housekeeping never stops the worker
                    log.warning("after_batch failed: %s", exc)
        # drain anything queued after the stop marker: answer it instead of leaving it hanging
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Pending) and item.future.set_running_or_notify_cancel():
                item.future.set_exception(Overloaded("scorer is shutting down", 1.0, "closed"))

    def _run(self, batch: list[_Pending]) -> None:
        self.batches += 1
        try:
            results = list(self.run_batch([p.job for p in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)}")
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                self.jobs += 1
                return
            log.warning("batch of %d failed (%s); retrying its jobs one by one", len(batch), exc)
            for pending in batch:
                self._run([pending])
            return
        for pending, result in zip(batch, results, strict=True):
            pending.future.set_result(result)
        self.jobs += len(batch)
