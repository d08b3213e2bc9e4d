"""build_once: several processes preparing one cache folder at once build it exactly once."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from lsat.core.cache_folder import build_once


def _is_complete(folder: Path) -> bool:
    return (folder / "payload.txt").is_file()


def _slow_build(staging: Path) -> None:
    with open(staging.parent / "builds.log", "a") as log:
        log.write(f"{staging.name}\n")
    time.sleep(0.5)  # long enough for every other process to arrive while this one builds
    (staging / "payload.txt").write_text("complete")


def _prepare(target: str, barrier) -> str:
    barrier.wait()
    folder = build_once(Path(target), _slow_build, is_complete=_is_complete)
    return (folder / "payload.txt").read_text()


def test_concurrent_processes_build_once_and_all_read_the_result(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "model"
    context = multiprocessing.get_context("spawn")
    workers = 4
    with context.Manager() as manager:
        barrier = manager.Barrier(workers)
        with context.Pool(workers) as pool:
            results = pool.starmap(_prepare, [(str(target), barrier)] * workers)
    assert results == ["complete"] * workers
    assert len((tmp_path / "cache" / "builds.log").read_text().splitlines()) == 1
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(".model.")]
    assert leftovers == [".model.lock"]  # no staging folder left behind


def test_failed_build_leaves_nothing_and_the_next_call_builds(tmp_path: Path) -> None:
    target = tmp_path / "model"

    def broken(staging: Path) -> None:
        (staging / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(target, broken, is_complete=_is_complete)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".model.lock"]
    build_once(target, lambda s: (s / "payload.txt").write_text("ok"), is_complete=_is_complete)
    assert (target / "payload.txt").read_text() == "ok"


def test_incomplete_leftover_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale").write_text("from an interrupted older layout")
    build_once(target, lambda s: (s / "payload.txt").write_text("ok"), is_complete=_is_complete)
    assert sorted(p.name for p in target.iterdir()) == ["payload.txt"]
