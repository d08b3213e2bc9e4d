"""Leaf of the trainer: the job's result type, what serves now, and small pure helpers.

Every other trainer module may import this one; it imports no trainer module but
:mod:`.child` (the child-job types) and :mod:`.options`, so the trainer's modules form no import
circle.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lsat.adapters.lifecycle.adapter_prompt import AdapterPrompt
from lsat.adapters.lifecycle.publication import SERVING_ALIASES, ServingSet, current_serving_set
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.model.precision import resolve_bf16
from lsat.adapters.model.training import TrainConfig
from lsat.adapters.trainer.child import ChildJob, ChildResult, InitAdapter
from lsat.adapters.trainer.options import QualityOptions
from lsat.core.settings import Settings
from lsat.data.types import Sample

__all__ = [
    "ACTOR",
    "RetrainOutcome",
    "ServingNow",
    "TrainFn",
    "adapter_name",
    "child_job",
    "split_window",
    "train_config_of",
    "training_bf16",
]

TrainFn = Callable[[ChildJob], ChildResult]
"""Trains one adapter described by a :class:`ChildJob` (default: in a spawned child process)."""

ACTOR = "lsat-trainer"
"""Who moves the registry's aliases (recorded with every alias change)."""


@dataclass(frozen=True)
class RetrainOutcome:
    """What a job did: ``outcome`` is promoted | rejected | duplicate | skipped."""

    window_id: int
    outcome: str
    reason: str
    version: AdapterVersion | None = None
    serving: ServingSet | None = None
    window_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    long_refreshed: AdapterVersion | None = None


@dataclass(frozen=True)
class ServingNow:
    """The serving long and short versions and the published serving set, read together."""

    long: AdapterVersion | None
    short: AdapterVersion | None
    serving: ServingSet | None

    @classmethod
    def read(cls, registry: RegistryStore) -> ServingNow:
        """What the registry's serving aliases point at now."""
        return cls(
            registry.resolve(SERVING_ALIASES["long"]),
            registry.resolve(SERVING_ALIASES["short"]),
            current_serving_set(registry),
        )


def adapter_name(version: AdapterVersion) -> str:
    """The name a registered version gets inside the scoring model: ``<kind>-v<version>``."""
    return f"{version.kind}-v{version.version}"


def split_window(samples: Sequence[Sample], validation_fraction: float) -> tuple[list, list]:
    """First ``1 − f`` (time order) to train, the tail to validate; each side non-empty.

    >>> train, val = split_window(list(range(10)), 0.1)
    >>> len(train), val
    (9, [9])
    """
    cut = min(len(samples) - 1, max(1, round(len(samples) * (1 - validation_fraction))))
    return list(samples[:cut]), list(samples[cut:])


def training_bf16(settings: Settings, options: QualityOptions) -> bool:
    """bf16 autocast for training: ``options.bf16`` when given, on when the settings ask for
    it, else by capability (native bf16 on this CPU: avx512_bf16 / AMX; or a bf16 GPU)."""
    if options.bf16 is not None:
        return options.bf16
    if settings.trainer.bf16:
        return True
    import torch

    return resolve_bf16(None, "cuda" if torch.cuda.is_available() else "cpu")


def train_config_of(settings: Settings, options: QualityOptions | None = None) -> TrainConfig:
    """The TrainConfig the trainer settings and options describe (layers: in the child).

    With ``options.patience`` the validation tail is scored after every epoch and training
    stops once it has not improved that many times; the best epoch's weights are kept.
    """
    options = options or QualityOptions()
    t = settings.trainer
    return TrainConfig(
        epochs=t.epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        bf16_autocast=training_bf16(settings, options),
        max_seconds=t.max_train_seconds,
        patience=options.patience,
    )


def child_job(
    settings: Settings,
    kind: str,
    train: Sequence[Sample],
    validation: Sequence[Sample],
    titles: Mapping[str, str],
    label: object,
    metadata: Mapping[str, Any],
    options: QualityOptions | None = None,
    init: InitAdapter | None = None,
) -> ChildJob:
    """The child job training a ``kind`` adapter into ``<artifact_dir>/<kind>-<label>-<tag>``
    with the options' prompt, from scratch or (``init``) from a copy of a registered adapter."""
    options = options or QualityOptions()
    tag = uuid.uuid4().hex[:8]
    return ChildJob(
        base_model=settings.base_model,
        cache_dir=str(settings.cache_dir),
        kind=kind,
        train=list(train),
        validation=list(validation),
        titles=dict(titles),
        target_dir=str(settings.artifact_dir / f"{kind}-{label}-{tag}"),
        config=train_config_of(settings, options),
        top_layer_count=settings.trainer.layers,
        metadata=dict(metadata),
        prompt=AdapterPrompt(options.prompt_format, options.item_noun),
        init=init,
    )
