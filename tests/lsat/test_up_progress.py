"""A training child that computes counts as progress for lsat up's stall timeout: the CPU time
of its process group (spawned training processes included) is read from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsat.apps.orchestrator.progress import group_cpu_seconds, stat_fields

BUSY_CHILD = """
import multiprocessing as mp, time
def burn():
    end = time.process_time() + 1.5
    while time.process_time() < end:
        pass
    time.sleep(600)
if __name__ == "__main__":
    p = mp.get_context("spawn").Process(target=burn)
    p.start()
    p.join()
"""


def test_stat_fields_survive_odd_command_names() -> None:
    line = "7 (python (x) y) R 1 99 99 0 -1 4194304 0 0 0 0 30 12 0 0 20 0 1 0"
    assert stat_fields(line) == (99, 42)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_the_cpu_of_a_group_s_spawned_grandchild_is_counted(tmp_path: Path) -> None:
    script = tmp_path / "busy.py"
    script.write_text(BUSY_CHILD)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    busy = subprocess.Popen([sys.executable, str(script)], **quiet)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], **quiet)
    try:
        deadline = time.monotonic() + 120
        while group_cpu_seconds([busy.pid]) < 1.5:
            assert time.monotonic() < deadline, "the grandchild's CPU never showed"
            time.sleep(0.2)
        assert group_cpu_seconds([idle.pid]) < group_cpu_seconds([busy.pid])
        assert group_cpu_seconds([]) == 0.0
    finally:
        for process in (busy, idle):
            os.killpg(process.pid, signal.SIGKILL)  # the group: the spawned grandchild too
            process.wait()
