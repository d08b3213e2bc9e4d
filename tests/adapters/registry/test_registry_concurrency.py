"""Concurrent trainers: no duplicate version numbers, no lost registrations.

Threads share one store; processes each open their own (on a database not yet migrated, so the
migrations race too). The retry path itself is driven deterministically by a stale allocator.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import pytest

from lsat.adapters.lifecycle.registry import (
    SqlRegistryStore,
    VersionAllocationFailed,
    open_registry,
)

THREADS = 6
PROCESSES = 4
PER_WORKER = 8


def register_many(store: SqlRegistryStore, worker: int, count: int) -> list[tuple[str, int]]:
    """Register ``count`` short versions; return (path, version) of each."""
    done = []
    for index in range(count):
        path = f"/art/w{worker}-{index}"
        version = store.register("short", path=path, sha256=f"{worker * 1000 + index:064x}")
        done.append((path, version.version))
    return done


def assert_all_registered_once(store: SqlRegistryStore, claimed: list[tuple[str, int]]) -> None:
    total = len(claimed)
    rows = store.list(kind="short")
    assert sorted(v.version for v in rows) == list(range(1, total + 1))  # no gaps, no duplicates
    assert {(v.path, v.version) for v in rows} == set(claimed)  # every caller got its own row
    assert Counter(version for _, version in claimed).most_common(1)[0][1] == 1


def test_threads_sharing_a_store_get_distinct_versions(registry: SqlRegistryStore) -> None:
    start = threading.Barrier(THREADS)

    def work(worker: int) -> list[tuple[str, int]]:
        start.wait()
        return register_many(registry, worker, PER_WORKER)

    with ThreadPoolExecutor(THREADS) as pool:
        claimed = [item for part in pool.map(work, range(THREADS)) for item in part]
    assert len(claimed) == THREADS * PER_WORKER
    assert_all_registered_once(registry, claimed)


def _process_worker(url: str, worker: int, start: Any, results: Any) -> None:
    start.wait()
    store = open_registry(url)
    try:
        results.put((worker, register_many(store, worker, PER_WORKER), store.version_clashes))
    except BaseException as exc:
        results.put((worker, repr(exc), -1))
        raise
    finally:
        store.close()


def test_processes_on_a_fresh_database_get_distinct_versions(db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(PROCESSES), context.Queue()
    workers = [
        context.Process(target=_process_worker, args=(db_url, worker, start, results))
        for worker in range(PROCESSES)
    ]
    for process in workers:
        process.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=60)
    failures = [outcome for outcome in outcomes if outcome[2] < 0]
    assert not failures, failures
    claimed = [item for _, part, _ in outcomes for item in part]
    with open_registry(db_url) as store:
        assert_all_registered_once(store, claimed)  # type: ignore[arg-type]
    assert all(process.exitcode == 0 for process in workers)


def test_a_clash_is_retried_in_a_fresh_savepoint(
    registry: SqlRegistryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register("short", path="/s1", sha256="1" * 64)
    registry.register("short", path="/s2", sha256="2" * 64)
    real_next = registry._next_version
    stale = iter([1, 2])  # what a writer that read max(version) too early would try

    def next_version(session: Any, kind: str) -> int:
        return next(stale, None) or real_next(session, kind)

    monkeypatch.setattr(registry, "_next_version", next_version)
    third = registry.register("short", path="/s3", sha256="3" * 64)
    assert third.version == 3
    assert registry.version_clashes == 2
    assert [v.path for v in registry.list(kind="short")] == ["/s3", "/s2", "/s1"]


def test_allocation_gives_up_after_max_attempts_and_the_store_stays_usable(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_registry(db_url, max_attempts=3) as store:
        assert isinstance(store, SqlRegistryStore)
        store.register("long", path="/l1", sha256="1" * 64)
        monkeypatch.setattr(store, "_next_version", lambda session, kind: 1)
        with pytest.raises(VersionAllocationFailed) as caught:
            store.register("long", path="/l2", sha256="2" * 64)
        assert caught.value.code == "version_allocation_failed"
        assert caught.value.key == {"kind": "long", "attempts": 3}
        assert store.version_clashes == 3
        monkeypatch.undo()
        assert store.register("long", path="/l2", sha256="2" * 64).version == 2
        assert [v.version for v in store.list(kind="long")] == [2, 1]


def test_concurrent_moves_of_one_alias_form_one_unbroken_chain(registry: SqlRegistryStore) -> None:
    for index in range(THREADS):
        registry.register("short", path=f"/s{index}", sha256=f"{index:064x}")
    start = threading.Barrier(THREADS)

    def move(version: int) -> None:
        start.wait()
        registry.set_alias("candidate", "short", version, reason=f"v{version}", actor="t")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(move, range(1, THREADS + 1)))
    history = registry.alias_history("candidate")
    assert sorted(change.target.version for change in history) == list(range(1, THREADS + 1))
    assert history[0].previous is None
    for before, after in pairwise(history):
        assert after.previous == before.target  # no writer saw a stale current target
    assert registry.resolve("candidate").key == history[-1].target  # type: ignore[union-attr]
