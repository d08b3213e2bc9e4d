"""Resuming a job whose trainer died between register and promote; drift counting; the
long-adapter refresh policy; the catalogue cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from trainer_helpers import fill_windows, trainer_settings

from lsat.adapters.lifecycle.artifacts import WEIGHTS_FILE
from lsat.adapters.lifecycle.publication import ServingSet
from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.trainer import (
    Retrainer,
    TitleCache,
    TrainerMetrics,
    bootstrap_long,
    build_retrainer,
    long_refresh_due,
    resume_decision,
)
from lsat.adapters.trainer.child import run_job
from lsat.adapters.trainer.drift import LossDrift
from lsat.adapters.trainer.promotion import Promoter
from lsat.core.settings import Settings
from lsat.data.types import Item
from lsat.stream.store import SampleStore
from lsat.stream.triggers import RetrainRequest


def _request(window_id: int) -> RetrainRequest:
    return RetrainRequest(window_id, 0, 10, 30, "full", {}, 1.0)


class _KilledBeforePromotion(BaseException):
    """Stands for SIGKILL at the worst moment: after register, before the alias moves."""


class _DiesBeforePromoting(Promoter):
    def promote(self, *args: object, **kwargs: object) -> ServingSet | None:
        raise _KilledBeforePromotion


def _dies_before_promoting(retrainer: Retrainer) -> Retrainer:
    p = retrainer.promoter
    dying = _DiesBeforePromoting(
        p.registry, p.pool, p.publisher, artifact_dir=p.artifact_dir, merge=p.merge
    )
    return replace(retrainer, promoter=dying)


@pytest.mark.parametrize("corrupt", [False, True])
def test_registered_but_unpromoted_version_is_resumed(
    tmp_path: Path, sqlite_url: str, corrupt: bool
) -> None:
    settings = trainer_settings(tmp_path, sqlite_url)
    fill_windows(sqlite_url, {1: 30})
    with open_registry(sqlite_url) as registry:
        store = SampleStore(sqlite_url)
        with pytest.raises(_KilledBeforePromotion):
            retrainer = build_retrainer(settings, registry, store, train_fn=run_job)
            _dies_before_promoting(retrainer).handle(_request(1))
        version = registry.get("short", 1)
        assert version.status == "candidate" and registry.resolve("serving-short") is None
        if corrupt:
            path = Path(version.path) / WEIGHTS_FILE
            data = bytearray(path.read_bytes())
            data[-1] ^= 0xFF
            path.write_bytes(bytes(data))
        published: list[ServingSet] = []
        fresh = build_retrainer(
            settings, registry, store, publish=published.append, train_fn=run_job
        )
        outcome = fresh.handle(_request(1))  # the re-delivered request
        assert len(registry.list(kind="short")) == 1  # not trained again
        if corrupt:
            assert outcome.outcome == "rejected" and "refused on resume" in outcome.reason
            assert registry.get("short", 1).status == "rejected"
            assert registry.resolve("serving-short") is None and published == []
        else:
            assert outcome.outcome == "promoted" and "resumed short/v1" in outcome.reason
            assert registry.resolve("serving-short").version == 1
            assert published[-1].keys == {"short": 1}
            again = fresh.handle(_request(1))
            assert again.outcome == "duplicate" and "re-published" in again.reason
        store.close()


@pytest.mark.parametrize(
    ("status", "ever_served", "serving", "expected"),
    [
        ("candidate", False, None, "promote"),
        ("candidate", False, 2, "promote"),
        ("candidate", False, 9, "superseded"),
        ("candidate", True, 3, "republish"),
        ("candidate", True, 9, "duplicate"),
        ("rejected", False, None, "duplicate"),
    ],
)
def test_resume_decision_table(
    status: str, ever_served: bool, serving: int | None, expected: str
) -> None:
    decision = resume_decision(status, ever_served=ever_served, serving_version=serving, version=3)
    assert decision == expected


def _policy(every: int | None, on_drift: bool) -> Settings:
    s = Settings()
    knobs = {"long_refresh_every_windows": every, "long_refresh_on_drift": on_drift}
    return replace(s, trainer=replace(s.trainer, **knobs))


@pytest.mark.parametrize(
    ("every", "on_drift", "since", "drift", "due"),
    [
        (None, False, 100, True, False),
        (3, False, 2, True, False),
        (3, False, 3, False, True),
        (None, True, 0, True, True),
        (None, True, 5, False, False),
    ],
)
def test_long_refresh_policy_table(
    every: int | None, on_drift: bool, since: int, drift: bool, due: bool
) -> None:
    assert long_refresh_due(_policy(every, on_drift), since, drift) is due


def test_drift_detections_count_transitions_only() -> None:
    drift = LossDrift(TrainerMetrics())
    assert drift.observe([0.1] * 200) == 0
    high = drift.observe([5.0] * 100)  # one sustained shift, split over
    high += drift.observe([5.0] * 100)  # two windows: still one detection
    assert high == 1
    text = drift.metrics.render().decode()
    assert f"lsat_trainer_loss_drift_detections_total {float(high)}" in text


def test_catalogue_is_read_again_only_for_unknown_items(tmp_path: Path, sqlite_url: str) -> None:
    fill_windows(sqlite_url, {1: 20})
    store = SampleStore(sqlite_url)
    cache = TitleCache(store.catalogue)
    samples = store.window_samples(1)
    assert cache.titles_for(samples)["2"] == "Sunny 2"
    cache.titles_for(samples)
    assert cache.catalogue_reads == 1
    store.upsert_item(Item("new-item", "Brand New"))
    unknown = [replace(samples[0], item_id="new-item")]
    assert cache.titles_for(unknown)["new-item"] == "Brand New"
    assert cache.catalogue_reads == 2
    store.close()


def test_long_adapter_is_refreshed_every_k_windows(tmp_path: Path, sqlite_url: str) -> None:
    settings = trainer_settings(
        tmp_path, sqlite_url, long_refresh_every_windows=1, long_bootstrap_windows=2
    )
    fill_windows(sqlite_url, {1: 24, 2: 24})
    published: list[ServingSet] = []
    with open_registry(sqlite_url) as registry:
        store = SampleStore(sqlite_url)
        long = bootstrap_long(settings, registry, store=store, window_ids=[1], train_fn=run_job)
        retrainer = build_retrainer(
            settings, registry, store, publish=published.append, train_fn=run_job
        )
        outcome = retrainer.handle(_request(2))
        assert outcome.long_refreshed is not None
        refreshed = registry.resolve("serving-long")
        assert refreshed.version == long.version + 1 and refreshed.trigger == "refresh"
        assert [int(w) for w in refreshed.window_ids] == [1, 2]
        assert published[-1].long is not None and published[-1].long.version == refreshed.version
        store.close()
