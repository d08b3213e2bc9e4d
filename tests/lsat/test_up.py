"""``lsat up`` pieces: pure helpers (tables), the supervisor with real processes, and a SIGINT
mid-run of the real command that must leave no child process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lsat.apps.orchestrator import ChildCrashed, ChildSpec, Supervisor, events_needed
from lsat.apps.orchestrator.live_table import CombinedTracker, WindowRow, scrape_window_combined
from lsat.apps.orchestrator.retrain_skip import skip_offset

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("events", "samples", "expected"),
    [
        ([("a", t) for t in range(12)], 1, 11),  # 11th event of a has 10 before it
        ([("a", t) for t in range(12)], 2, 12),
        ([("a", 0), ("b", 1)] * 11, 2, 22),  # interleaved users: a's and b's 11th
        ([("a", t) for t in range(5)], 3, 5),  # too few: all events
    ],
)
def test_events_needed(events: list[tuple[str, int]], samples: int, expected: int) -> None:
    assert events_needed(events, samples, history_length=10) == expected


@pytest.mark.parametrize(
    ("requests", "up_to", "expected"),
    [
        ([(0, 0), (1, 1), (2, 2)], 0, 1),
        ([(0, 0), (1, 0), (2, 1)], 0, 2),  # a repeated request for a skipped window
        ([(0, 0), (1, 1)], 1, 2),  # nothing after: past the end
        ([(5, 3), (6, 4), (7, 3)], 3, 6),  # never skip a later window's request
    ],
)
def test_skip_offset(requests: list[tuple[int, int]], up_to: int, expected: int) -> None:
    assert skip_offset(requests, up_to) == expected


def test_row_cells_and_combined_tracker() -> None:
    row = WindowRow(2, "drift", 17, 0.5, 0.25, 0.75, 0.3, "short/v1 promoted", 0.8, 0.6)
    assert row.cells() == [
        "2",
        "drift",
        "17",
        "0.500",
        "0.250",
        "0.750*",
        "0.800*",
        "0.600",
        "0.3",
        "short/v1 promoted",
    ]
    assert WindowRow(3, "full", 9).cells()[3:8] == ["—"] * 5
    tracker = CombinedTracker()
    tracker.update(None, 0.9)
    tracker.update(4, None)
    tracker.update(4, 0.6)
    assert tracker.by_window == {4: 0.6}


def test_window_and_combined_auc_come_from_one_scrape(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    window = Gauge("lsat_window_id", "window the AUC gauges describe", registry=registry)
    auc = Gauge("lsat_adapter_auc", "AUC per adapter", ["adapter"], registry=registry)
    exposition = tmp_path / "metrics.txt"
    url = exposition.as_uri()
    exposition.write_bytes(generate_latest(registry))
    assert scrape_window_combined(url) == (0, None)  # a fresh trainer: no combined AUC yet
    window.set(7)
    auc.labels(adapter="long").set(0.61)
    auc.labels(adapter="combined").set(0.64)
    exposition.write_bytes(generate_latest(registry))
    assert scrape_window_combined(url) == (7, 0.64)
    assert scrape_window_combined((tmp_path / "absent.txt").as_uri()) == (None, None)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_supervisor_reports_a_crash_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    supervisor.start(ChildSpec("sleeper", _python("import time; time.sleep(60)")))
    supervisor.start(ChildSpec("crasher", _python("print('bad config'); raise SystemExit(3)")))
    done = supervisor.start(ChildSpec("oneshot", _python("pass"), expected_exit=True))
    try:
        with pytest.raises(ChildCrashed) as caught:
            for _ in range(200):
                supervisor.check()
                time.sleep(0.05)
        assert caught.value.name == "crasher" and caught.value.code == 3
        assert "bad config" in caught.value.tail
        done.process.wait()
    finally:
        supervisor.stop_all(grace_s=5)
    assert all(child.exit_code() is not None for child in supervisor.children)


def test_stop_all_kills_grandchildren(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print(p.pid, flush=True); time.sleep(60)"
    )
    supervisor = Supervisor(tmp_path)
    child = supervisor.start(ChildSpec("parent", _python(code)))
    for _ in range(200):
        text = child.log_path.read_text().strip()
        if text:
            break
        time.sleep(0.05)
    grandchild = psutil.Process(int(text))
    supervisor.stop_all(grace_s=5)
    # a SIGKILL is delivered asynchronously: give the kernel a moment to end the process
    deadline = time.monotonic() + 5
    while _alive({grandchild.pid}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive({grandchild.pid})


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.kafka
@pytest.mark.slow
def test_sigint_mid_run_stops_every_child(ml100k_dir: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LSAT_KAFKA_SESSION_TIMEOUT_S": "2",
        "LSAT_KAFKA_HEARTBEAT_INTERVAL_S": "0.5",
        "LSAT_TRAINER_MAX_SAMPLES": "40",
    }
    command = [
        sys.executable, "-m", "lsat.apps.cli", "--home", str(tmp_path), "--base-model",
        "tiny-llama",
        "up", "--dataset", str(ml100k_dir), "--windows", "3", "--window-size", "40",
        "--long-windows", "1", "--free-ports",
    ]  # fmt: skip
    up = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    parent = psutil.Process(up.pid)
    descendants: set[int] = set()
    try:
        for _ in range(600):  # until the broker, worker, scorer and a trainer step all run
            descendants |= {p.pid for p in parent.children(recursive=True)}
            names = {p.name() for p in parent.children(recursive=True)}
            logs = list(tmp_path.glob("runs/*/logs/bootstrap-long.log"))
            if logs and "tansu" in names and len(descendants) >= 4:
                break
            assert up.poll() is None, "lsat up exited before it was interrupted"
            time.sleep(0.2)
        time.sleep(2)
        descendants |= {p.pid for p in parent.children(recursive=True)}
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=120)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 130, out
    assert "stopped by signal" in out
    assert len(descendants) >= 4
    assert _alive(descendants) == set()
