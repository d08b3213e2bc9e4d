from __future__ import annotations

import numpy as np
import pytest
import torch

from lsat.adapters.lifecycle.artifacts import load_into_recommender, save_recommender_adapter
from lsat.adapters.model.recommender import LoraRecommender, RecommenderError
from lsat.adapters.model.training import TrainConfig
from tests.adapters.conftest import TOY_TITLES, toy_samples

QUICK = TrainConfig(lr=1e-2, batch_size=8, lora_dropout=0.0)


@pytest.fixture
def trained(tiny_recommender) -> LoraRecommender:
    tiny_recommender.train_adapter("long", toy_samples(16, 1), [], config=QUICK)
    tiny_recommender.train_adapter(
        "short", toy_samples(16, 2), [], config=TrainConfig(**{**QUICK.__dict__, "layers": (2, 3)})
    )
    return tiny_recommender


def test_score_many_equals_single_scores(trained) -> None:
    samples = toy_samples(20, 5)
    many = trained.score_many([None, "long", "short"], samples)
    for name in (None, "long", "short"):
        np.testing.assert_allclose(many[name], trained.score(name, samples), atol=1e-5)
    assert not np.allclose(many["long"], many[None], atol=1e-4)


def test_upper_layer_adapters_share_the_lower_layer_cache(tiny_recommender) -> None:
    upper = TrainConfig(**{**QUICK.__dict__, "layers": (2, 3)})
    tiny_recommender.train_adapter("a1", toy_samples(8, 1), [], config=upper)
    tiny_recommender.train_adapter(
        "a2", toy_samples(8, 2), [], config=TrainConfig(**{**upper.__dict__, "seed": 3})
    )
    samples = toy_samples(10, 9)
    misses = tiny_recommender.cache.misses
    tiny_recommender.score_many(["a1", "a2"], samples)
    assert tiny_recommender.cache.misses - misses == len(
        samples
    )  # lower layers ran once per prompt


def test_base_scores_unchanged_by_adapters_and_deletion(tiny_recommender) -> None:
    samples = toy_samples(10, 4)
    before = tiny_recommender.score(None, samples)
    tiny_recommender.train_adapter("x", toy_samples(8, 1), [], config=QUICK)
    np.testing.assert_allclose(tiny_recommender.score(None, samples), before, atol=1e-6)
    tiny_recommender.delete_adapter("x")
    assert tiny_recommender.adapter_names == []
    np.testing.assert_allclose(tiny_recommender.score(None, samples), before, atol=1e-6)


def test_lora_state_round_trip_reproduces_scores(trained) -> None:
    samples = toy_samples(12, 6)
    state, config = trained.lora_state("short"), trained.adapter_config("short")
    assert all(".lora_A.weight" in k or ".lora_B.weight" in k for k in state)
    assert all(".short." not in k for k in state)
    trained.set_lora_state("copy", state, config)
    np.testing.assert_allclose(
        trained.score("copy", samples), trained.score("short", samples), atol=1e-6
    )


def test_an_int_layers_to_transform_is_one_layer(trained) -> None:
    # peft allows `layers_to_transform=3` (one layer); adding such an adapter used to raise
    # TypeError ('int' object is not iterable) while checking the layer range
    samples = toy_samples(12, 6)
    one_layer = TrainConfig(**{**QUICK.__dict__, "layers": (3,)})
    trained.train_adapter("upper", toy_samples(16, 3), [], config=one_layer)
    config = trained.adapter_config("upper")
    config.layers_to_transform = 3
    trained.set_lora_state("as_int", trained.lora_state("upper"), config)
    np.testing.assert_allclose(
        trained.score("as_int", samples), trained.score("upper", samples), atol=1e-6
    )
    config.layers_to_transform = 7
    with pytest.raises(RecommenderError, match="layers 7"):
        trained.set_lora_state("outside", trained.lora_state("upper"), config)


def test_set_lora_state_rejects_mismatched_state(trained) -> None:
    state = trained.lora_state("short")
    with pytest.raises(RecommenderError, match="missing"):
        trained.set_lora_state("bad", state, QUICK)  # QUICK adapts all layers, state only 2..3
    assert "bad" not in trained.adapter_names


def test_delta_merge_with_single_weight_one_equals_the_adapter(trained) -> None:
    samples = toy_samples(12, 7)
    trained.merge("merged", ["long"], [1.0], method="delta")
    np.testing.assert_allclose(
        trained.score("merged", samples), trained.score("long", samples), atol=1e-5
    )


def test_live_titles_change_the_prompt(tiny_recommender) -> None:
    titles = dict(TOY_TITLES)
    rec = LoraRecommender(tiny_recommender.base, titles, progress=False)
    sample = toy_samples(1, 3)
    first = rec.score(None, sample)
    titles[sample[0].item_id] = "A completely different title"
    assert not np.allclose(rec.score(None, sample), first)


@pytest.mark.parametrize("call", ["score", "lora_state", "delete_adapter", "adapter_config"])
def test_unknown_adapter_is_named_in_the_error(tiny_recommender, call) -> None:
    method = getattr(tiny_recommender, call)
    args = ("ghost", toy_samples(1)) if call == "score" else ("ghost",)
    with pytest.raises(RecommenderError, match="ghost"):
        method(*args)


def test_duplicate_adapter_name_is_rejected(trained) -> None:
    with pytest.raises(RecommenderError, match="long"):
        trained.train_adapter("long", toy_samples(8), [], config=QUICK)


def test_failed_training_leaves_no_half_adapter(tiny_recommender) -> None:
    with pytest.raises(ValueError, match="no training samples"):
        tiny_recommender.train_adapter("empty", [], [], config=QUICK)
    assert tiny_recommender.adapter_names == []


def test_empty_scoring_returns_empty(trained) -> None:
    assert trained.score("long", []).shape == (0,)
    assert torch.is_grad_enabled()


def test_save_and_load_adapter_round_trip(trained, tmp_path) -> None:
    samples = toy_samples(8, 8)
    folder = save_recommender_adapter(trained, "short", tmp_path / "short-v1", {"kind": "short"})
    load_into_recommender(trained, folder, "reloaded")
    np.testing.assert_allclose(
        trained.score("reloaded", samples), trained.score("short", samples), atol=1e-6
    )
    with pytest.raises(RecommenderError, match="reloaded"):
        load_into_recommender(trained, folder, "reloaded")


def test_load_refuses_an_adapter_of_another_base_model(trained, tmp_path) -> None:
    folder = save_recommender_adapter(
        trained, "long", tmp_path / "long", {"kind": "long", "base_model": "x"}
    )
    with pytest.raises(RecommenderError, match="'x'"):
        load_into_recommender(trained, folder, "foreign")
