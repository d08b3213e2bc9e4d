"""The ΔW merge of the serving long and a new short adapter, saved and registered as ``merged``.

The long share is the grid weight with the best validation AUC (:func:`choose_merge_weight`).
"""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING

import numpy as np

from lsat.adapters.lifecycle.artifacts import load_adapter, save_adapter
from lsat.adapters.lifecycle.publication import MERGE_WEIGHT_METRIC
from lsat.adapters.lifecycle.registry import AdapterVersion
from lsat.adapters.model.combine import choose_merge_weight
from lsat.core.evaluation import auc
from lsat.data.types import Sample

if TYPE_CHECKING:
    from lsat.adapters.trainer.job import Retrainer

__all__ = ["merge_and_register"]


def merge_and_register(
    retrainer: Retrainer,
    long: AdapterVersion,
    short: AdapterVersion,
    validation: list[Sample],
    labels: np.ndarray,
    window_id: int,
) -> tuple[AdapterVersion, float]:
    """ΔW merge long + short with the weight that maximises validation AUC; register it."""
    rec = retrainer.recommender
    long_name, short_name = retrainer.loaded(long), retrainer.loaded(short)

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

    choice = choose_merge_weight(score, grid=(0.0, 0.25, 0.5, 0.75, 1.0))
    rec.merge("merge-final", [long_name, short_name], [choice.alpha, 1 - choice.alpha])
    target = retrainer.settings.artifact_dir / f"merged-w{window_id}-{uuid.uuid4().hex[:8]}"
    path = save_adapter(
        target,
        rec.lora_state("merge-final"),
        rec.adapter_config("merge-final"),
        {"base_model": rec.base.name, "kind": "merged", "window": window_id},
    )
    rec.delete_adapter("merge-final")
    sha256 = load_adapter(path).metadata["sha256"]
    metrics = {MERGE_WEIGHT_METRIC: choice.alpha}
    if math.isfinite(choice.score):
        metrics["val_auc_merged"] = choice.score
    merged = retrainer.registry.register(
        "merged",
        path=path,
        sha256=sha256,
        window_id=window_id,
        trigger="merge",
        parents=[long.key, short.key],
        metrics=metrics,
    )
    return merged, choice.alpha
