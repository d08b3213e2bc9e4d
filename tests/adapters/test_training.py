from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from peft import get_peft_model

from lsat.adapters.model.batching import right_pad
from lsat.adapters.model.forward import answer_token_ids
from lsat.adapters.model.prompts import build_prompt
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig, top_layers
from lsat.core.evaluation import auc
from tests.adapters.conftest import TOY_TITLES, make_tiny_base, toy_samples

EXACT = {"lora_dropout": 0.0, "batch_size": 64, "lr": 1e-2, "epochs": 3}


def plain_peft_lora_state(samples, config: TrainConfig) -> dict[str, torch.Tensor]:
    """Reference: plain peft, full-vocab logits, whole set as one batch, same seed."""
    base = make_tiny_base()
    torch.manual_seed(config.seed)
    model = get_peft_model(base.model, config.lora_config(), adapter_name="ref")
    yes, no = answer_token_ids(base.tokenizer)
    ids, mask = right_pad(
        [
            base.tokenizer.encode(build_prompt(s, TOY_TITLES), add_special_tokens=False)
            for s in samples
        ],
        0,
    )
    targets = torch.tensor([0 if s.label else 1 for s in samples])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    model.train()
    for _ in range(config.epochs):
        logits = model(input_ids=ids, attention_mask=mask).logits
        last = logits[torch.arange(len(samples)), mask.sum(1) - 1][:, [yes, no]]
        loss = F.cross_entropy(last, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {
        n.replace(".ref.", "."): p.detach().clone()
        for n, p in model.named_parameters()
        if "lora_" in n
    }


def ours_lora_state(samples, config: TrainConfig) -> dict[str, torch.Tensor]:
    rec = LoraRecommender(make_tiny_base(), TOY_TITLES, progress=False)
    rec.train_adapter("mine", samples, [], config=config)
    return {
        n.replace(".mine.", "."): p.detach().clone()
        for n, p in rec.model.named_parameters()
        if "lora_" in n and ".mine." in n
    }


def assert_states_close(left, right, atol=1e-5) -> None:
    assert left.keys() == right.keys()
    for key in left:
        torch.testing.assert_close(left[key], right[key], atol=atol, rtol=1e-4)


def test_full_model_training_matches_plain_peft() -> None:
    samples = toy_samples(12, seed=1)
    config = TrainConfig(**EXACT)
    ours = ours_lora_state(samples, config)
    reference = plain_peft_lora_state(samples, config)
    assert_states_close(ours, reference, atol=1e-4)  # float noise, amplified by Adam's scaling
    assert any(v.abs().sum() > 0 for k, v in ours.items() if "lora_B" in k)  # it did train


def test_upper_layer_cache_matches_uncached_training() -> None:
    samples = toy_samples(12, seed=2)
    cached = ours_lora_state(samples, TrainConfig(**EXACT, layers=(2, 3)))
    uncached = ours_lora_state(
        samples, TrainConfig(**EXACT, layers=(2, 3), cache_lower_layers=False)
    )
    assert_states_close(cached, uncached, atol=1e-4)
    assert all(".layers.2." in k or ".layers.3." in k for k in cached)


def test_same_seed_repeats_and_other_seed_differs() -> None:
    samples = toy_samples(16, seed=3)
    config = TrainConfig(batch_size=4, seed=7)
    first, again = ours_lora_state(samples, config), ours_lora_state(samples, config)
    other = ours_lora_state(samples, TrainConfig(batch_size=4, seed=8))
    assert_states_close(first, again, atol=0)
    assert any(not torch.allclose(first[k], other[k]) for k in first)


def test_training_learns_a_toy_pattern(tiny_recommender) -> None:
    train, validation = toy_samples(96, seed=10), toy_samples(48, seed=11)
    before = auc([s.label for s in validation], tiny_recommender.score(None, validation))
    config = TrainConfig(lr=1e-2, epochs=3, batch_size=8, lora_dropout=0.0)
    report = tiny_recommender.train_adapter("toy", train, validation, config=config)
    losses = report.losses
    assert np.mean(losses[-12:]) < np.mean(losses[:12]) - 0.05
    assert report.val_auc > max(before, 0.6)
    assert report.steps == 36 and report.samples_seen == 288 and report.tokens_seen > 288
    assert report.best_step in (12, 24, 36)


def test_early_stopping_restores_the_best_weights(tiny_recommender) -> None:
    train, validation = toy_samples(48, seed=12), toy_samples(32, seed=13)
    config = TrainConfig(lr=2e-2, epochs=4, batch_size=8, eval_every_steps=2, patience=3)
    report = tiny_recommender.train_adapter("es", train, validation, config=config)
    aucs = [auc for _, auc in report.val_history]
    assert report.val_auc == max(aucs)
    assert dict(report.val_history)[report.best_step] == report.val_auc
    rescored = auc([s.label for s in validation], tiny_recommender.score("es", validation))
    assert rescored == pytest.approx(report.val_auc, abs=1e-9)
    if report.steps < 24:  # stopped early: exactly `patience` evaluations after the best
        assert len(aucs) - 1 - aucs.index(max(aucs)) == 3


def test_max_seconds_stops_after_first_step(tiny_recommender) -> None:
    report = tiny_recommender.train_adapter(
        "quick", toy_samples(64), toy_samples(8, 1), config=TrainConfig(max_seconds=0.0)
    )
    assert report.steps == 1 and report.val_history[-1][0] == 1


def test_fine_tuning_starts_from_the_old_weights(tiny_recommender) -> None:
    train = toy_samples(24, seed=20)
    tiny_recommender.train_adapter("long", train, [], config=TrainConfig(lr=1e-2, batch_size=8))
    old = tiny_recommender.lora_state("long")
    tiny_recommender.train_adapter(
        "tuned",
        toy_samples(8, seed=21),
        [],
        init_from="long",
        config=TrainConfig(lr=1e-7, batch_size=8),
    )
    tuned = tiny_recommender.lora_state("tuned")
    assert_states_close(tuned, old, atol=1e-5)
    assert_states_close(tiny_recommender.lora_state("long"), old, atol=0)
    tiny_recommender.train_adapter(
        "fresh", toy_samples(8, seed=21), [], config=TrainConfig(lr=1e-7)
    )
    fresh = tiny_recommender.lora_state("fresh")
    assert any(not torch.allclose(fresh[k], old[k], atol=1e-3) for k in old)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"r": 0}, "r"),
        ({"lr": 0.0}, "lr"),
        ({"layers": (-1,)}, "layers"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_config_is_rejected_naming_the_field(kwargs, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        TrainConfig(**kwargs)


def test_top_layers_and_auc_helpers() -> None:
    assert top_layers(3, 30) == (27, 28, 29)
    with pytest.raises(ValueError, match="31"):
        top_layers(31, 30)
    assert math.isnan(auc([], []))
