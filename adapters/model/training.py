"""LoRA training on the answer token: cross-entropy over the " Yes"/" No" logits only.

Early stopping on validation AUC restores the best weights. Speed-ups (each can be switched
off, see :class:`TrainConfig`): length-bucketed batches, bf16 autocast, LoRA on upper layers
only with the frozen lower layers' output cached per prompt, and the two-row answer head.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from peft import LoraConfig
from torch import nn
from tqdm.auto import tqdm

from lsat.adapters.model.batching import shuffled_length_batches
from lsat.adapters.model.layer_cache import HiddenStateCache
from lsat.adapters.model.scoring import EncodedPrompts, batch_logits, score_prompts
from lsat.core import evaluation

__all__ = ["TrainConfig", "TrainReport", "start_layer_of", "top_layers", "train_lora"]


@dataclass(frozen=True)
class TrainConfig:
    """LoRA shape and optimisation settings (paper defaults: r=8, alpha=16, q/v, lr 1e-3).

    ``layers=None`` adapts every layer; ``eval_every_steps=None`` evaluates once per epoch;
    ``patience`` counts evaluations without a better validation AUC before stopping.
    ``cache_lower_layers`` reuses the frozen layers' output when ``layers`` skips the bottom.
    """

    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    layers: tuple[int, ...] | None = None
    lr: float = 1e-3
    epochs: int = 1
    batch_size: int = 8
    eval_every_steps: int | None = None
    patience: int | None = None
    seed: int = 0
    bf16_autocast: bool = False
    max_seconds: float | None = None
    weight_decay: float = 0.0
    cache_lower_layers: bool = True
    bucketed: bool = True

    def __post_init__(self) -> None:
        for name in ("r", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(sorted(int(i) for i in self.layers)))
            if not self.layers or self.layers[0] < 0:
                raise ValueError(
                    f"TrainConfig.layers must be non-negative indices, got {self.layers}"
                )
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    def lora_config(self) -> LoraConfig:
        """The peft config for this adapter shape."""
        return LoraConfig(
            r=self.r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=list(self.target_modules),
            layers_to_transform=list(self.layers) if self.layers is not None else None,
            bias="none",
            task_type="CAUSAL_LM",
        )


def top_layers(count: int, total: int) -> tuple[int, ...]:
    """The indices of the top ``count`` of ``total`` layers.

    >>> top_layers(2, 30)
    (28, 29)
    """
    if not 0 < count <= total:
        raise ValueError(f"top layer count must be in 1..{total}, got {count}")
    return tuple(range(total - count, total))


def start_layer_of(config: TrainConfig) -> int:
    """The first layer that must run with the adapter (0 = all, no lower-layer cache).

    >>> start_layer_of(TrainConfig(layers=(5, 7))), start_layer_of(TrainConfig())
    (5, 0)
    """
    if config.layers is None or not config.cache_lower_layers:
        return 0
    return config.layers[0]


@dataclass
class TrainReport:
    """What one training run did; ``val_auc`` is the restored best (NaN without validation)."""

    name: str
    val_auc: float
    best_step: int
    steps: int
    samples_seen: int
    tokens_seen: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    val_history: list[tuple[int, float]] = field(default_factory=list)


def _trainable(model: nn.Module, adapter: str) -> dict[str, torch.Tensor]:
    params: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        is_ours = "lora_" in name and f".{adapter}." in f"{name}."
        param.requires_grad_(is_ours)
        if is_ours:
            params[name] = param
    if not params:
        raise ValueError(f"adapter {adapter!r} has no LoRA parameters in this model")
    return params


def train_lora(
    model: nn.Module,
    adapter: str,
    train: EncodedPrompts,
    train_labels: Sequence[int],
    validation: EncodedPrompts,
    validation_labels: Sequence[int],
    config: TrainConfig,
    *,
    cache: HiddenStateCache | None = None,
    start_layer: int = 0,
    progress: bool = False,
) -> TrainReport:
    """Train the (already added and active) peft adapter ``adapter`` in place.

    With a ``cache`` and ``start_layer > 0`` (every adapted layer at or above it), the layers
    below ``start_layer`` run once per prompt without gradients and their output is reused.
    """
    if len(train) != len(train_labels) or len(validation) != len(validation_labels):
        raise ValueError("prompts and labels differ in length")
    if len(train) == 0:
        raise ValueError(f"adapter {adapter!r}: no training samples")
    started = time.perf_counter()
    params = _trainable(model, adapter)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(params.values(), lr=config.lr, weight_decay=config.weight_decay)
    targets = torch.tensor([0 if int(y) == 1 else 1 for y in train_labels], dtype=torch.long)
    report = TrainReport(adapter, math.nan, 0, 0, 0, 0, 0.0)
    best_auc, best_state, stale = -math.inf, None, 0

    def evaluate() -> bool:
        """Score validation; returns True when early stopping should end training."""
        nonlocal best_auc, best_state, stale
        if len(validation) == 0:
            return False
        scores = score_prompts(
            model,
            validation,
            batch_size=max(config.batch_size, 16),
            start_layer=start_layer,
            cache=cache,
            bf16=config.bf16_autocast,
            bucketed=config.bucketed,
        )
        auc = evaluation.auc(validation_labels, scores)
        report.val_history.append((report.steps, auc))
        if not math.isnan(auc) and auc > best_auc:
            best_auc, stale, report.best_step = auc, 0, report.steps
            best_state = {k: p.detach().clone() for k, p in params.items()}
            return False
        stale += 1
        return config.patience is not None and stale >= config.patience

    total = config.epochs * math.ceil(len(train) / config.batch_size)
    bar = tqdm(total=total, desc=f"train {adapter}", unit="step", disable=not progress, leave=False)
    stop = False
    for _epoch in range(config.epochs):
        batches = shuffled_length_batches(
            train.lengths, config.batch_size, rng, bucketed=config.bucketed
        )
        for batch in batches:
            model.train()
            logits = batch_logits(
                model, train, batch, start_layer=start_layer, cache=cache, bf16=config.bf16_autocast
            )
            loss = F.cross_entropy(logits, targets[batch].to(logits.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            report.steps += 1
            report.samples_seen += len(batch)
            report.tokens_seen += sum(train.lengths[i] for i in batch)
            report.losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{report.losses[-1]:.3f}")
            every = config.eval_every_steps
            if every and report.steps % every == 0 and evaluate():
                stop = True
            if (
                config.max_seconds is not None
                and time.perf_counter() - started > config.max_seconds
            ):
                stop = True
            if stop:
                break
        if stop:
            break
        if not config.eval_every_steps and evaluate():
            break
    bar.close()
    if not report.val_history or report.val_history[-1][0] != report.steps:
        evaluate()
    if best_state is not None:
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(best_state[name])
        report.val_auc = best_auc
    model.eval()
    report.seconds = time.perf_counter() - started
    return report
