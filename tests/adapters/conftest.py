"""Tiny-model fixtures for adapters tests (and any other test that needs a real small LM).

``tiny_base`` is a random 4-layer Llama (hidden 128) with an offline byte-level tokenizer:
real transformer + peft code paths, fast enough for logic tests. ``smollm2_base`` loads the
real SmolLM2 from the cache under ``$LSAT_HOME/cache`` (default ``.lsat/cache`` in the repo);
use it only in tests marked ``@pytest.mark.smollm2``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lsat.adapters.model.base_model import BaseLM, load_base_model, tiny_llama
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig
from lsat.core.settings import Settings
from lsat.data.types import Sample

REPO_ROOT = Path(__file__).resolve().parents[2]

# One intra-op thread: the tiny model gains nothing from two, and on a shared 2-core machine
# OpenMP spin-waiting under contention made a tiny forward ~20x slower (measured).
torch.set_num_threads(1)

TOY_TITLES = {str(i): f"{'Sunny' if i % 2 == 0 else 'Gloomy'} {i}" for i in range(40)}
"""Catalogue for toy samples: even items are "Sunny i" (liked), odd ones "Gloomy i"."""


def toy_samples(count: int, seed: int = 0) -> list[Sample]:
    """Samples with a learnable rule: the user likes the target iff its id is even.

    >>> [s.label for s in toy_samples(3)] == [int(int(s.item_id) % 2 == 0) for s in toy_samples(3)]
    True
    """
    rng = random.Random(seed)
    samples = []
    for k in range(count):
        history = tuple(str(rng.randrange(40)) for _ in range(rng.randrange(2, 6)))
        labels = tuple(rng.randrange(2) for _ in history)
        target = rng.randrange(40)
        samples.append(
            Sample(
                f"e{seed}-{k}", f"u{k % 7}", str(target), k, int(target % 2 == 0), history, labels
            )
        )
    return samples


def make_tiny_base(seed: int = 0) -> BaseLM:
    """A fresh tiny Llama (hidden 128, 4 layers)."""
    return tiny_llama(seed, hidden_size=128, num_layers=4)


@pytest.fixture
def tiny_base() -> BaseLM:
    """A fresh tiny Llama per test (peft mutates the model it wraps)."""
    return make_tiny_base()


@pytest.fixture
def tiny_recommender(tiny_base: BaseLM) -> LoraRecommender:
    """A LoraRecommender on the tiny Llama with toy titles, no progress bars."""
    return LoraRecommender(
        tiny_base, TOY_TITLES, train_config=TrainConfig(batch_size=8), progress=False
    )


@pytest.fixture
def toy_data() -> Callable[[int, int], list[Sample]]:
    """``toy_data(count, seed)`` → toy samples (target liked iff its id is even)."""
    return toy_samples


@pytest.fixture(scope="session")
def smollm2_cache_dir() -> Path:
    """Where the de-quantised SmolLM2 folder is cached (created on first use)."""
    home = Settings.from_env().home
    return (home if home.is_absolute() else REPO_ROOT / home) / "cache"


@pytest.fixture
def smollm2_base(smollm2_cache_dir: Path) -> BaseLM:
    """A fresh real SmolLM2-135M-Instruct (cached load, well under a second)."""
    return load_base_model("smollm2", cache_dir=smollm2_cache_dir)
