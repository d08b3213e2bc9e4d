"""One decision per window: a trainer presumed dead, whose window a standby decided while it
still trained, registers its version and then yields (rejected as a duplicate, never served)."""

from __future__ import annotations

from pathlib import Path

from trainer_helpers import fill_windows, trainer_settings

from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.trainer import RetrainOutcome, build_retrainer
from lsat.adapters.trainer.child import ChildJob, ChildResult, run_job
from lsat.stream.store import SampleStore
from lsat.stream.triggers import RetrainRequest

REQUEST = RetrainRequest(1, 0, 10, 30, "full", {}, 1.0)


def test_a_trainer_presumed_dead_yields_the_window_to_the_standby(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = trainer_settings(tmp_path, sqlite_url)
    fill_windows(sqlite_url, {1: 30})
    store = SampleStore(sqlite_url)
    try:
        with open_registry(sqlite_url) as registry:
            standby = build_retrainer(settings, registry, store, train_fn=run_job)
            took_over: list[RetrainOutcome] = []

            def train_while_the_standby_takes_over(job: ChildJob) -> ChildResult:
                """The group dropped this trainer mid-training; the standby ran the job."""
                took_over.append(standby.handle(REQUEST))
                return run_job(job)

            paused = build_retrainer(
                settings, registry, store, train_fn=train_while_the_standby_takes_over
            )
            outcome = paused.handle(REQUEST)

            assert [(o.outcome, o.version.version) for o in took_over] == [("promoted", 1)]
            assert outcome.outcome == "duplicate"
            assert outcome.version is not None and outcome.version.version == 1
            assert outcome.serving is None  # nothing published
            shorts = {v.version: v for v in registry.list(kind="short")}
            assert sorted(shorts) == [1, 2]
            assert shorts[1].status == "candidate"
            assert shorts[2].status == "rejected"
            assert (shorts[2].status_reason or "").startswith("duplicate: ")
            served = {c.target.version for c in registry.alias_history("serving-short")}
            assert served == {1}
            assert registry.resolve("serving-short").version == 1
    finally:
        store.close()
