"""The ML-100K data the benchmarks use: ``../shared/data/ml-100k`` if present, else fetched.

A user's fresh clone has no ``../shared``; there the project's own fetcher
(:func:`lsat.data.fetch.fetch_movielens_100k`) downloads ML-100K into the cache once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsat.core.settings import Settings
from lsat.data.fetch import fetch_movielens_100k
from lsat.data.loaders import load_dataset
from lsat.data.samples import build_samples
from lsat.data.types import Sample

__all__ = ["ROOT", "cache_dir", "fixed_split", "ml100k_folder"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_ML100K = ROOT.parent / "shared" / "data" / "ml-100k"
HELD_OUT_TAIL = 5000  # the test samples come from the last interactions in time


def cache_dir() -> Path:
    """The project cache folder (``LSAT_HOME``/cache), anchored at the repository root."""
    settings = Settings.from_env()
    return settings.cache_dir if settings.home.is_absolute() else ROOT / settings.cache_dir


def ml100k_folder() -> Path:
    """``../shared/data/ml-100k`` when this checkout has it, else the fetched copy."""
    if SHARED_ML100K.is_dir():
        return SHARED_ML100K
    print(f"{SHARED_ML100K} is absent: fetching MovieLens 100K into {cache_dir()}", flush=True)
    return fetch_movielens_100k(cache_dir())


def fixed_split(n_train: int, n_test: int, seed: int = 0) -> tuple[dict, list[Sample], list]:
    """``(titles, train, test)``: a seeded random sample of the earlier interactions to train
    on, and the first ``n_test`` of the last 5,000 (later in time) to test on."""
    dataset = load_dataset(ml100k_folder())
    titles = {k: v.title for k, v in dataset.items.items()}
    samples = build_samples(dataset)
    if n_train > len(samples) - HELD_OUT_TAIL or n_test > HELD_OUT_TAIL:
        raise SystemExit(
            f"--train must be <= {len(samples) - HELD_OUT_TAIL} and --test <= {HELD_OUT_TAIL}"
        )
    rng = np.random.default_rng(seed)
    # n_train + n_test draws, of which the first n_train are used: the draw the published
    # bench/results were made with, so they reproduce exactly
    picked = rng.choice(len(samples) - HELD_OUT_TAIL, n_train + n_test, replace=False)
    train = [samples[i] for i in sorted(picked[:n_train])]
    test = samples[-HELD_OUT_TAIL:][:n_test]
    return titles, train, test
