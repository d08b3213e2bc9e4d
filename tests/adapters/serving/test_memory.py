"""Giving freed native memory back: the trimmer's schedule, where the batcher runs it, and the
oneDNN primitive cache limit of ``lsat serve``."""

from __future__ import annotations

import sys
import threading
from types import SimpleNamespace

import pytest

from lsat.adapters.serving.batcher import MicroBatcher
from lsat.adapters.serving.memory import (
    ONEDNN_CACHE_VARIABLE,
    PRIMITIVE_CACHE_CAPACITY,
    MemoryTrimmer,
    limit_primitive_cache,
    malloc_trim,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trims_at_most_once_per_interval() -> None:
    clock, calls = Clock(), []
    trimmer = MemoryTrimmer(1.0, trim=lambda: calls.append(clock.now), clock=clock)
    for step in (0.0, 0.4, 0.5, 0.2, 1.0, 0.0):
        clock.now += step
        trimmer.maybe_trim()
    assert calls == pytest.approx([100.0, 101.1, 102.1])
    assert trimmer.trims == 3


def test_interval_zero_trims_every_time_and_none_never() -> None:
    calls: list[int] = []
    every = MemoryTrimmer(0.0, trim=lambda: calls.append(1), clock=Clock())
    never = MemoryTrimmer(None, trim=lambda: calls.append(2), clock=Clock())
    for _ in range(3):
        every.maybe_trim()
        never.maybe_trim()
    assert calls == [1, 1, 1] and never.trims == 0
    with pytest.raises(ValueError, match="interval_s"):
        MemoryTrimmer(-1.0)


def test_a_failing_trim_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise OSError("no")

    assert MemoryTrimmer(0.0, trim=broken).maybe_trim() is False
    assert "memory trim failed: no" in caplog.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_glibc_malloc_trim_is_found_and_runs() -> None:
    assert malloc_trim() in (True, False)  # None would mean "not available"


def test_the_batcher_runs_after_batch_once_per_batch_after_its_results() -> None:
    seen: list[tuple[int, int, int]] = []
    batcher: MicroBatcher[int, int] = MicroBatcher(
        lambda jobs: [2 * j for j in jobs],
        window_ms=0,
        after_batch=lambda: seen.append((batcher.batches, batcher.jobs, batcher.running)),
    )
    try:
        assert [batcher.submit(j) for j in range(3)] == [0, 2, 4]
    finally:
        batcher.close()
    # one call per batch, each after that batch's results were set (jobs counted, none running)
    assert seen == [(1, 1, 0), (2, 2, 0), (3, 3, 0)]


def test_after_batch_failures_do_not_stop_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    def after() -> None:
        raise RuntimeError("housekeeping broke")

    batcher: MicroBatcher[int, int] = MicroBatcher(
        lambda jobs: [j + 1 for j in jobs], window_ms=0, after_batch=after
    )
    try:
        assert [batcher.submit(1), batcher.submit(2)] == [2, 3]
    finally:
        batcher.close()
    assert "after_batch failed: housekeeping broke" in caplog.text


def test_the_service_trims_after_its_batches(tmp_path: object) -> None:
    from lsat.adapters.model.base_model import tiny_llama
    from lsat.adapters.model.recommender import LoraRecommender
    from lsat.adapters.serving.service import ScoringService
    from lsat.adapters.serving.state import ServingState

    recommender = LoraRecommender(tiny_llama(0, hidden_size=64, num_layers=2), {}, progress=False)
    trimmed = []
    service = ScoringService(recommender, ServingState(), threading.RLock(), trim_interval_s=0.0)
    service.trimmer.trim = lambda: trimmed.append(service.batcher.batches)
    try:
        assert service.batcher.submit(_job(service)) == {}
        assert service.batcher.submit(_job(service)) == {}
    finally:
        service.close()
    assert trimmed == [1, 2]


def _job(service: object) -> object:
    from lsat.adapters.serving.service import _Job

    serving_nothing = SimpleNamespace(names={})  # no adapter: the batch runs no forward
    return _Job(serving_nothing, [])  # type: ignore[arg-type]  # a stand-in LoadedSet


def test_lsat_serve_limits_the_onednn_cache_unless_the_environment_says() -> None:
    env: dict[str, str] = {}
    assert limit_primitive_cache(environ=env) == str(PRIMITIVE_CACHE_CAPACITY)
    assert env == {ONEDNN_CACHE_VARIABLE: str(PRIMITIVE_CACHE_CAPACITY)}
    assert limit_primitive_cache(environ={ONEDNN_CACHE_VARIABLE: "1024"}) == "1024"
