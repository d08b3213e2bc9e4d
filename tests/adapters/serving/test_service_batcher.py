"""MicroBatcher: concurrent jobs share calls, a full queue refuses, one bad job fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from lsat.adapters.serving.batcher import MicroBatcher
from lsat.adapters.serving.state import Overloaded


class Recorder:
    """A run_batch that records each call and can be held shut by a gate."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, jobs: list[int]) -> list[int]:
        self.entered.set()
        self.gate.wait(10)
        self.calls.append(list(jobs))
        if any(job < 0 for job in jobs):
            raise ValueError(f"negative job in {jobs}")
        return [job * 10 for job in jobs]


def run_in_threads(
    fn: Callable[[int], object], args: list[int]
) -> tuple[list[threading.Thread], list[object]]:
    """Start ``fn(arg)`` per arg in its own thread; results (or exceptions) fill in by index."""
    results: list[object] = [None] * len(args)

    def call(i: int) -> None:
        try:
            results[i] = fn(args[i])
        except Exception as exc:  # collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(args))]
    for thread in threads:
        thread.start()
    return threads, results


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_jobs_waiting_while_a_batch_runs_share_the_next_call() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, window_ms=0, queue_limit=16)
    run.gate.clear()
    threads, results = run_in_threads(batcher.submit, [1])
    run.entered.wait(10)  # job 1 runs (held at the gate)
    more, more_results = run_in_threads(batcher.submit, list(range(2, 9)))
    wait_until(lambda: batcher.waiting == 7)
    run.gate.set()
    for thread in threads + more:
        thread.join(10)
    assert results == [10] and more_results == [20, 30, 40, 50, 60, 70, 80]
    assert run.calls == [[1], [2, 3, 4, 5, 6, 7, 8]]
    assert (batcher.batches, batcher.jobs) == (2, 8)
    batcher.close()


def test_the_item_budget_splits_batches_and_a_large_job_runs_alone() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, window_ms=0, max_batch_items=5, size_of=lambda job: job)
    run.gate.clear()
    threads, _ = run_in_threads(batcher.submit, [1])
    run.entered.wait(10)
    more, results = run_in_threads(batcher.submit, [2, 2, 2, 9])
    wait_until(lambda: batcher.waiting == 4)
    run.gate.set()
    for thread in threads + more:
        thread.join(10)
    assert sorted(results) == [20, 20, 20, 90]
    assert all(sum(call) <= 5 or len(call) == 1 for call in run.calls), run.calls
    batcher.close()


def test_a_full_queue_raises_overloaded_at_once() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, window_ms=0, queue_limit=2)
    run.gate.clear()
    threads, _ = run_in_threads(batcher.submit, [1])
    run.entered.wait(10)
    queued, _ = run_in_threads(batcher.submit, [2, 3])
    wait_until(lambda: batcher.waiting == 2)
    started = time.monotonic()
    with pytest.raises(Overloaded, match="queue full") as refused:
        batcher.submit(4)
    assert refused.value.reason == "queue_full" and time.monotonic() - started < 5
    run.gate.set()
    for thread in threads + queued:
        thread.join(10)
    assert batcher.submit(5) == 50  # healthy again
    batcher.close()


def test_a_job_waiting_past_the_timeout_is_withdrawn() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, window_ms=0, timeout_s=0.2)
    run.gate.clear()
    threads, results = run_in_threads(batcher.submit, [1])
    run.entered.wait(10)
    with pytest.raises(Overloaded, match="waited") as refused:
        batcher.submit(2)
    assert refused.value.reason == "queue_timeout"
    run.gate.set()
    threads[0].join(10)
    assert results == [10]  # the running job still finished, after its own timeout
    assert [2] not in run.calls  # the withdrawn job never ran
    batcher.close()


def test_one_bad_job_fails_alone() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, window_ms=0)
    run.gate.clear()
    threads, _ = run_in_threads(batcher.submit, [1])
    run.entered.wait(10)
    more, results = run_in_threads(batcher.submit, [2, -3, 4])
    wait_until(lambda: batcher.waiting == 3)
    run.gate.set()
    for thread in threads + more:
        thread.join(10)
    assert results[0] == 20 and results[2] == 40
    assert isinstance(results[1], ValueError) and "-3" in str(results[1])
    batcher.close()


def test_close_answers_what_was_queued_and_refuses_new_jobs() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, window_ms=0)
    run.gate.clear()
    threads, results = run_in_threads(batcher.submit, [1])
    run.entered.wait(10)  # job 1 runs (held at the gate) ...
    more, later = run_in_threads(batcher.submit, [2])
    deadline = time.monotonic() + 10
    while batcher.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.005)  # ... and job 2 is queued before the close begins
    assert batcher.waiting == 1
    closer = threading.Thread(target=batcher.close)
    closer.start()
    run.gate.set()
    closer.join(10)
    for thread in threads + more:
        thread.join(10)
    assert sorted(results + later) == [10, 20]
    with pytest.raises(Overloaded, match="shutting down"):
        batcher.submit(3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_ms": -1}, "window_ms"),
        ({"queue_limit": 0}, "queue_limit"),
        ({"max_batch_items": 0}, "max_batch_items"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MicroBatcher(lambda jobs: jobs, **kwargs)


def test_without_its_own_thread_the_loop_runs_in_the_thread_that_serves() -> None:
    ran_on: list[str] = []

    def run(jobs: list[int]) -> list[int]:
        ran_on.append(threading.current_thread().name)
        return [job + 1 for job in jobs]

    batcher = MicroBatcher(run, window_ms=0, own_thread=False)
    assert not any(t.name == "scorer-batcher" for t in threading.enumerate())
    threads, results = run_in_threads(batcher.submit, [1, 2, 3])
    server = threading.Thread(target=batcher.serve, name="the-serving-thread")
    server.start()
    for thread in threads:
        thread.join(10)
    assert results == [2, 3, 4]
    with pytest.raises(RuntimeError, match="already running"):
        batcher.serve()
    batcher.close()
    server.join(10)
    assert not server.is_alive()  # close ends serve()
    assert ran_on and set(ran_on) == {"the-serving-thread"}
