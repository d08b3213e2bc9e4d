"""``lsat worker`` with the store thread under cProfile, for ``bench_workers.py --profile``.

    python bench/profiled_worker.py OUT.prof

Runs the ordinary worker (``lsat.apps.cli worker``, configured by ``LSAT_*``); every thread whose
name starts with ``lsat-store`` (the processor's one thread, where decode, pipeline and store
commit run) gets its own ``cProfile.Profile``, and so does the main thread, all timed by the
thread's CPU clock (``time.thread_time``: waits for the CPU, the GIL or the database server do
not count, so the shares hold on a busy machine). ``OUT.prof.start`` clears what was collected
so far (start-up); when ``OUT.prof.dump``
appears, the stats collected so far are written to ``OUT.prof`` (marshal, readable by
``pstats``), the main thread's (the event loop: faust, aiokafka) to ``OUT.prof.main``, then
``OUT.prof.done`` is created: the benchmark asks for the dump once every
event is stored and then kills the worker, so no graceful shutdown is needed.
"""

from __future__ import annotations

import cProfile
import marshal
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROFILED_PREFIX = "lsat-store"
_profiles: list[cProfile.Profile] = []
_original_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    if not self.name.startswith(PROFILED_PREFIX):
        _original_run(self)
        return
    profile = cProfile.Profile(time.thread_time)
    _profiles.append(profile)
    profile.enable()
    try:
        _original_run(self)
    finally:
        profile.disable()


def merged_stats() -> dict[Any, Any]:
    """The stats of every profiled thread so far, merged (read without stopping them)."""
    merged: dict[Any, Any] = {}
    for profile in list(_profiles):
        profile.snapshot_stats()  # reads getstats(); the thread keeps profiling
        for func, (cc, nc, tt, ct, callers) in profile.stats.items():
            if func in merged:
                cc0, nc0, tt0, ct0, callers0 = merged[func]
                both = dict(callers0)
                for caller, value in callers.items():
                    old = both.get(caller)
                    both[caller] = (
                        value
                        if old is None
                        else tuple(a + b for a, b in zip(old, value, strict=True))
                    )
                merged[func] = (cc0 + cc, nc0 + nc, tt0 + tt, ct0 + ct, both)
            else:
                merged[func] = (cc, nc, tt, ct, dict(callers))
    return merged


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.05)


def _dump_when_asked(out: Path, main: cProfile.Profile) -> None:
    _wait_for(Path(f"{out}.start"))
    for profile in [main, *_profiles]:  # forget the start-up (imports, joining the group)
        profile.clear()
    _wait_for(Path(f"{out}.dump"))
    out.write_bytes(marshal.dumps(merged_stats()))
    main.snapshot_stats()
    Path(f"{out}.main").write_bytes(marshal.dumps(main.stats))
    Path(f"{out}.done").touch()


def main() -> int:
    out = Path(sys.argv[1])
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]  # before any thread
    main_profile = cProfile.Profile(time.thread_time)  # the event loop: faust, aiokafka
    threading.Thread(target=_dump_when_asked, args=(out, main_profile), daemon=True).start()
    from lsat.apps.cli import main as cli

    main_profile.enable()
    return cli(["worker"])


if __name__ == "__main__":
    raise SystemExit(main())
