"""Checks on the real SmolLM2-135M (marked ``smollm2``: minutes, not seconds)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from lsat.adapters.model.base_model import load_base_model, smollm2_cache_folder
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig, top_layers

pytestmark = pytest.mark.smollm2


@pytest.fixture
def ml100k_samples(ml100k_dir):
    from lsat.data.loaders import load_dataset
    from lsat.data.samples import build_samples

    dataset = load_dataset(ml100k_dir)
    samples = build_samples(dataset)
    titles = {item_id: item.title for item_id, item in dataset.items.items()}
    return samples[-400:], titles


def test_loads_offline_from_the_cache(smollm2_cache_dir) -> None:
    load_base_model("smollm2", cache_dir=smollm2_cache_dir)  # converts once if needed
    assert (smollm2_cache_folder(smollm2_cache_dir) / "model.safetensors").exists()
    started = time.perf_counter()
    base = load_base_model("smollm2", cache_dir=smollm2_cache_dir)
    assert time.perf_counter() - started < 30  # generous: only guards against re-conversion
    assert base.model.config.num_hidden_layers == 30
    assert sum(p.numel() for p in base.model.parameters()) == pytest.approx(134.5e6, rel=0.01)


def test_scores_real_prompts_and_one_step_changes_them(smollm2_base, ml100k_samples) -> None:
    samples, titles = ml100k_samples
    rec = LoraRecommender(smollm2_base, titles, batch_size=8, progress=False)
    batch = samples[:16]
    base_scores = rec.score(None, batch)
    assert base_scores.shape == (16,) and np.all((base_scores > 0) & (base_scores < 1))
    config = TrainConfig(layers=top_layers(4, 30), batch_size=8, lr=1e-2, max_seconds=0.0)
    report = rec.train_adapter("one-step", samples[100:108], [], config=config)
    assert report.steps == 1
    tuned = rec.score("one-step", batch)
    assert np.abs(tuned - base_scores).max() > 1e-4
    np.testing.assert_allclose(rec.score(None, batch), base_scores, atol=1e-6)


def _load_smollm2_layers(cache_dir: str) -> int:
    base = load_base_model("smollm2", cache_dir=Path(cache_dir))
    return int(base.model.config.num_hidden_layers)


def test_several_processes_convert_into_one_empty_cache(tmp_path: Path) -> None:
    """The first-run race of `lsat up` (scorer and trainer converting at once) is gone."""
    cache_dir = tmp_path / "empty-cache"
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        layers = pool.map(_load_smollm2_layers, [str(cache_dir)] * 3)
    assert layers == [30, 30, 30]
    assert (smollm2_cache_folder(cache_dir) / "model.safetensors").is_file()
    staging = [p.name for p in cache_dir.iterdir() if p.name.startswith(".smollm2")]
    assert staging == [".smollm2-135m-instruct-hf.lock"]
