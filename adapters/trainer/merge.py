"""The ΔW merge of the serving long and a new short adapter, saved and registered as ``merged``.

The long share is the grid weight with the best validation AUC (:func:`choose_merge_weight`).
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import numpy as np

from lsat.adapters.lifecycle.artifacts import load_adapter, save_adapter
from lsat.adapters.lifecycle.publication import MERGE_WEIGHT_METRIC
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.model.combine import choose_merge_weight
from lsat.adapters.trainer.pool import AdapterPool
from lsat.core.evaluation import auc
from lsat.data.types import Sample

__all__ = ["MERGE_GRID", "merge_and_register"]

MERGE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Long shares tried for the merged adapter."""


def merge_and_register(
    pool: AdapterPool,
    registry: RegistryStore,
    artifact_dir: Path,
    long: AdapterVersion,
    short: AdapterVersion,
    validation: list[Sample],
    window_id: int,
) -> tuple[AdapterVersion, float]:
    """ΔW merge long + short with the weight that maximises validation AUC; register it."""
    rec = pool.recommender
    long_name, short_name = pool.loaded(long), pool.loaded(short)
    prompt = pool.prompt(short_name)  # the merge is prompted like the short adapter
    pool.use_prompt(prompt)
    labels = np.array([s.label for s in validation])

    def score(weight: float) -> float:
        rec.merge("merge-probe", [long_name, short_name], [weight, 1 - weight])
        try:
            probs = rec.score("merge-probe", validation)
        finally:
            rec.delete_adapter("merge-probe")
        try:
            return float(auc(labels, probs))
        except ValueError:  # single-class validation: AUC undefined
            return math.nan

    choice = choose_merge_weight(score, grid=MERGE_GRID)
    rec.merge("merge-final", [long_name, short_name], [choice.alpha, 1 - choice.alpha])
    target = artifact_dir / f"merged-w{window_id}-{uuid.uuid4().hex[:8]}"
    path = save_adapter(
        target,
        rec.lora_state("merge-final"),
        rec.adapter_config("merge-final"),
        {"base_model": rec.base.name, "kind": "merged", "window": window_id, **prompt.metadata()},
    )
    rec.delete_adapter("merge-final")
    sha256 = load_adapter(path).metadata["sha256"]
    metrics = {MERGE_WEIGHT_METRIC: choice.alpha}
    if math.isfinite(choice.score):
        metrics["val_auc_merged"] = choice.score
    merged = registry.register(
        "merged",
        path=path,
        sha256=sha256,
        window_id=window_id,
        trigger="merge",
        parents=[long.key, short.key],
        metrics=metrics,
    )
    return merged, choice.alpha
