"""Retrain jobs on stored windows with the real tiny Llama, child-process training and a real DB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from trainer_helpers import fill_windows, trainer_settings

from lsat.adapters.lifecycle.artifacts import WEIGHTS_FILE, load_adapter, sha256_file
from lsat.adapters.lifecycle.publication import ServingSet
from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.model.errors import AdapterIntegrityError
from lsat.adapters.trainer import bootstrap_long, build_retrainer
from lsat.adapters.trainer.child import ChildJob, ChildResult, run_job, train_in_child
from lsat.stream.store import SampleStore
from lsat.stream.triggers import RetrainRequest


def _request(window_id: int, count: int = 40) -> RetrainRequest:
    return RetrainRequest(window_id, 0, 10, count, "full", {}, 1.0)


def test_retrain_promotes_and_publishes_the_whole_serving_set(tmp_path: Path, db_url: str) -> None:
    settings = trainer_settings(tmp_path, db_url)
    fill_windows(db_url, {1: 40, 2: 40})
    published: list[ServingSet] = []
    with open_registry(db_url) as registry:
        store = SampleStore(db_url)
        retrainer = build_retrainer(
            settings, registry, store, publish=published.append, train_fn=run_job
        )
        first = retrainer.handle(_request(1))
        assert first.outcome == "promoted" and "short alone" in first.reason
        assert published[-1].long is None and published[-1].alpha == 0.0
        long = bootstrap_long(settings, registry, store=store, window_ids=[1], train_fn=run_job)
        second = retrainer.handle(_request(2))
        assert second.outcome == "promoted", second.reason
        serving = published[-1]
        assert serving.keys == {"long": long.version, "short": 2, "merged": 1}
        assert ServingSet.from_json(serving.to_json()) == serving
        # test-then-train: window 2 was scored by the serving long and short before training
        scored = {(e.kind, e.version) for e in registry.evaluations(window_id=2)}
        assert scored == {("long", 1), ("short", 1)}
        adapters = {"long", "short", "combined", "served"}  # served: the α ensemble (no hybrid)
        assert adapters | {"history_rate", "baseline"} <= set(second.window_metrics)
        assert second.window_metrics["served"] == second.window_metrics["combined"]
        assert retrainer.handle(_request(2)).outcome == "duplicate"
        assert len(registry.list(kind="short")) == 2
        text = retrainer.metrics.render().decode()
        assert 'lsat_retrain_total{outcome="promoted",trigger="full"} 2.0' in text
        assert 'lsat_adapter_auc{adapter="combined"}' in text
        assert "lsat_window_id 2.0" in text  # the window those AUC gauges describe
        store.close()


def test_margin_rejection_keeps_a_rejected_candidate(tmp_path: Path, sqlite_url: str) -> None:
    settings = trainer_settings(tmp_path, sqlite_url, margin=-1.0)  # must beat serving by 1 AUC
    fill_windows(sqlite_url, {1: 40, 2: 40})
    with open_registry(sqlite_url) as registry:
        store = SampleStore(sqlite_url)
        retrainer = build_retrainer(settings, registry, store, train_fn=run_job)
        assert retrainer.handle(_request(1)).outcome == "promoted"
        outcome = retrainer.handle(_request(2))
        assert outcome.outcome == "rejected"
        version = registry.get("short", 2)
        assert version.status == "rejected" and "margin" in (version.status_reason or "")
        assert registry.resolve("serving-short").version == 1
        store.close()


def _nan_train(job: ChildJob) -> ChildResult:
    """A training run whose weights came out NaN (written bypassing save_adapter's check)."""
    result = run_job(job)
    weights = Path(result.path) / WEIGHTS_FILE
    from safetensors.torch import load_file

    state = {k: torch.full_like(v, float("nan")) for k, v in load_file(str(weights)).items()}
    save_file(state, str(weights), metadata={"format": "pt"})
    meta_path = Path(result.path) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = sha256_file(weights)
    meta_path.write_text(json.dumps(meta))
    return ChildResult(result.path, meta["sha256"], result.metrics)


def test_nan_adapter_is_refused_and_never_served(tmp_path: Path, sqlite_url: str) -> None:
    settings = trainer_settings(tmp_path, sqlite_url)
    fill_windows(sqlite_url, {1: 30})
    with open_registry(sqlite_url) as registry:
        store = SampleStore(sqlite_url)
        outcome = build_retrainer(settings, registry, store, train_fn=_nan_train).handle(
            _request(1, 30)
        )
        assert outcome.outcome == "rejected" and "non-finite" in outcome.reason
        assert registry.get("short", 1).status == "rejected"
        assert registry.resolve("serving-short") is None
        store.close()


def test_corrupt_adapter_sha_mismatch_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    settings = trainer_settings(tmp_path, sqlite_url)
    fill_windows(sqlite_url, {1: 30, 2: 30})
    with open_registry(sqlite_url) as registry:
        store = SampleStore(sqlite_url)
        retrainer = build_retrainer(settings, registry, store, train_fn=run_job)
        assert retrainer.handle(_request(1, 30)).outcome == "promoted"
        path = Path(registry.get("short", 1).path) / WEIGHTS_FILE
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(AdapterIntegrityError, match="integrity"):
            load_adapter(path.parent)
        fresh = build_retrainer(
            settings, registry, store, train_fn=run_job
        )  # a restarted trainer loads serving anew
        with pytest.raises(AdapterIntegrityError, match="integrity"):
            fresh.handle(_request(2, 30))
        store.close()


def test_child_failure_raises_and_leaves_nothing(tmp_path: Path) -> None:
    from lsat.adapters.model.training import TrainConfig
    from lsat.adapters.trainer import TrainerChildFailed

    job = ChildJob(
        "no-such-model-xyz",
        str(tmp_path),
        "short",
        [],
        [],
        {},
        str(tmp_path / "out"),
        TrainConfig(),
    )
    with pytest.raises(TrainerChildFailed, match="failed"):
        train_in_child(job)
    assert not (tmp_path / "out").exists()


def _failing_child(job: ChildJob) -> ChildResult:
    """The real child runner on a base model that does not exist (the child exits non-zero)."""
    import dataclasses

    return train_in_child(dataclasses.replace(job, base_model="no-such-model-xyz"))


def test_failed_job_is_counted_before_the_retry(tmp_path: Path, sqlite_url: str) -> None:
    from lsat.adapters.trainer import TrainerChildFailed

    settings = trainer_settings(tmp_path, sqlite_url)
    fill_windows(sqlite_url, {1: 30})
    with open_registry(sqlite_url) as registry:
        store = SampleStore(sqlite_url)
        retrainer = build_retrainer(settings, registry, store, train_fn=_failing_child)
        for attempt in (1, 2):
            with pytest.raises(TrainerChildFailed):
                retrainer.handle(_request(1, 30))
            text = retrainer.metrics.render().decode()
            assert f'lsat_retrain_total{{outcome="failed",trigger="full"}} {attempt}.0' in text
        assert registry.list(kind="short") == []
        store.close()
