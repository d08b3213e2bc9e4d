"""The experiment's configuration: everything that decides its results.

It is recorded in ``state.json`` so that resuming with other settings is refused.

>>> c = ExperimentConfig(periods=20, strategies="short,lsat-en")
>>> c.m, c.strategies, c.train_config(30).layers
(10, ('short', 'lsat-en'), None)
>>> ExperimentConfig(lora_layers=2).train_config(30).layers
(28, 29)
>>> ExperimentConfig(prompt_format="chat", item_noun="product").prompt_format
'chat'
>>> ExperimentConfig(split="weekly")
Traceback (most recent call last):
...
lsat.adapters.experiment.strategies.ExperimentError: split 'weekly' must be 'count' or 'time'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from lsat.adapters.experiment.strategies import (
    STRATEGIES,
    ExperimentError,
    check_periods,
    default_long_periods,
    parse_strategies,
)
from lsat.adapters.model.precision import native_bf16
from lsat.adapters.model.prompts import PromptError, check_prompt_format
from lsat.adapters.model.training import TrainConfig, top_layers

__all__ = ["ADDED_SETTINGS", "ExperimentConfig"]

ADDED_SETTINGS = {"prompt_format": "tallrec", "item_noun": None, "hybrid_periods": 3}
"""Settings added after runs were recorded, with the values those runs effectively had."""


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides the results; recorded in ``state.json`` to guard resuming.

    ``prompt_format`` names a format of :mod:`lsat.adapters.model.prompts`; ``item_noun``
    overrides the dataset's ("movie"); ``hybrid_periods`` is how many earlier test periods'
    out-of-sample scores the hybrid is fitted on, besides the current validation samples.
    ``bf16`` (autocast) defaults to whether this CPU computes bf16 natively.
    """

    dataset: str = "ml-100k"
    periods: int = 4
    samples_per_period: int = 40
    split: Literal["count", "time"] = "count"
    strategies: tuple[str, ...] = STRATEGIES
    long_periods: int | None = None
    max_train_samples: int | None = None
    like_threshold: float = 3.0
    validation_fraction: float = 0.1
    base_model: str = "smollm2"
    seed: int = 0
    epochs: int = 1
    lr: float = 1e-3
    train_batch_size: int = 8
    score_batch_size: int = 16
    lora_layers: int | None = None
    bf16: bool = dataclasses.field(default_factory=native_bf16)
    patience: int | None = None
    eval_every_steps: int | None = None
    alpha_grid: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
    merge_grid: tuple[float, ...] = (0.25, 0.5, 0.75)
    prompt_format: str = "tallrec"
    item_noun: str | None = None
    hybrid_periods: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategies", parse_strategies(self.strategies))
        long_periods = self.long_periods
        if long_periods is None:
            long_periods = default_long_periods(self.periods)
            object.__setattr__(self, "long_periods", long_periods)
        check_periods(self.periods, int(long_periods))
        if self.split not in ("count", "time"):
            raise ExperimentError(f"split {self.split!r} must be 'count' or 'time'")
        if self.samples_per_period < 10:
            raise ExperimentError(
                f"samples_per_period {self.samples_per_period} must be >= 10 "
                "(a 10 % validation slice needs at least one sample)"
            )
        try:
            check_prompt_format(self.prompt_format)
        except PromptError as exc:
            raise ExperimentError(str(exc)) from exc
        if self.hybrid_periods < 0:
            raise ExperimentError(f"hybrid_periods {self.hybrid_periods} must be >= 0")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ExperimentError(f"max_train_samples {self.max_train_samples} must be >= 1")
        for name in ("alpha_grid", "merge_grid"):
            grid = tuple(float(w) for w in getattr(self, name))
            if not grid or any(not 0.0 <= w <= 1.0 for w in grid):
                raise ExperimentError(f"{name} {grid} must be non-empty weights in [0, 1]")
            object.__setattr__(self, name, grid)

    @property
    def m(self) -> int:
        """The resolved number of periods the long adapter is trained on."""
        assert self.long_periods is not None  # resolved by __post_init__
        return int(self.long_periods)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``state.json`` and the config check."""
        return dataclasses.asdict(self)

    def train_config(self, num_layers: int) -> TrainConfig:
        """The LoRA training settings (paper: r=8, α=16, dropout 0.05, q/v, lr 1e-3)."""
        layers = top_layers(self.lora_layers, num_layers) if self.lora_layers else None
        return TrainConfig(
            lr=self.lr,
            epochs=self.epochs,
            batch_size=self.train_batch_size,
            layers=layers,
            bf16_autocast=self.bf16,
            patience=self.patience,
            eval_every_steps=self.eval_every_steps,
            seed=self.seed,
        )
