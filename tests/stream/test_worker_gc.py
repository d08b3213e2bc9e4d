"""The worker's garbage-collector tuning (see :func:`lsat.stream.worker.tune_gc`)."""

from __future__ import annotations

import gc

from lsat.stream.worker import GC_THRESHOLDS, tune_gc


def test_tune_gc_freezes_the_start_up_heap_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000, "start-up objects left in the collected heap"
        assert GC_THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
