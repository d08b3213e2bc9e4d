"""The agents' helpers: store calls leave the event loop, run one at a time, finish even when
their caller is cancelled; failures are retried with backoff, never skipped."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

from lsat.stream.app import SerialThread, until_done


def test_calls_run_off_the_loop_one_at_a_time() -> None:
    serial = SerialThread()
    running, overlaps, threads = [0], [], set()

    def work(n: int) -> int:
        running[0] += 1
        overlaps.append(running[0])
        threads.add(threading.get_ident())
        time.sleep(0.01)
        running[0] -= 1
        return n

    async def main() -> tuple[list[int], int]:
        ticks = 0

        async def tick() -> None:  # the loop keeps running while the calls block
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        results = await asyncio.gather(*(serial(work, n) for n in range(10)))
        ticker.cancel()
        return list(results), ticks

    results, ticks = asyncio.run(main())
    serial.shutdown()
    assert results == list(range(10))
    assert max(overlaps) == 1 and len(threads) == 1
    assert threading.get_ident() not in threads
    assert ticks > 10


def test_a_cancelled_caller_waits_for_its_call_to_finish() -> None:
    serial = SerialThread()
    release, finished = threading.Event(), []

    def transaction() -> None:
        release.wait(5)
        finished.append(True)

    async def main() -> None:
        task = asyncio.create_task(serial(transaction))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done()  # still waiting for the call, not acknowledging the batch
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished == [True]

    asyncio.run(main())
    serial.shutdown()


def test_failures_are_retried_with_growing_waits_until_the_call_succeeds() -> None:
    attempts: list[float] = []

    async def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 4:
            raise ConnectionError("database is down")
        return "stored"

    result = asyncio.run(until_done(flaky, "storing", first_s=0.01, max_s=0.04))
    assert result == "stored" and len(attempts) == 4
    waits = [b - a for a, b in itertools.pairwise(attempts)]
    assert waits[0] >= 0.01 and waits[1] >= 0.02 and waits[2] >= 0.04
