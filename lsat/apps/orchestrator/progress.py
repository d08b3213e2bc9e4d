"""CPU time of process groups: a training child that computes is slow, not stalled.

``lsat up`` stops a run that shows no progress for a while. Training a long adapter on a busy
machine can take longer than that without changing the table, so the CPU minutes its training
children (and their spawned training processes, which share their process group) have used
count as progress too; a child idly polling Kafka gathers a CPU minute far too slowly to hide a
hang. Linux only (``/proc``); elsewhere it reads 0.

>>> stat_fields("42 (a b) c) S 1 42 42 0 -1 0 0 0 0 0 150 50 0 0")
(42, 200)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["group_cpu_seconds", "stat_fields"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_fields(text: str) -> tuple[int, int]:
    """``(process group, utime + stime in clock ticks)`` from one ``/proc/<pid>/stat`` line."""
    rest = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and ")"
    return int(rest[2]), int(rest[11]) + int(rest[12])


def group_cpu_seconds(pgids: Iterable[int], proc: Path = Path("/proc")) -> float:
    """CPU seconds used so far by the live processes of the given process groups."""
    wanted = set(pgids)
    ticks = 0
    if not wanted or not proc.is_dir():
        return 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            group, used = stat_fields((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):  # gone meanwhile, or unreadable
            continue
        if group in wanted:
            ticks += used
    return ticks / _TICKS
