"""Shared-prefix ranking equals the plain path (tiny Llama; one SmolLM2 check)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from peft import LoraConfig

from lsat.adapters.model.forward import answer_token_ids
from lsat.adapters.model.prefix_attention import (
    SuffixLayout,
    dense_reference_attention,
    suffix_attention,
)
from lsat.adapters.model.prefix_ranking import (
    PrefixRanker,
    PromptGroup,
    RankingUnsupported,
    split_shared_prefix,
)
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig, top_layers
from lsat.core.evaluation import auc
from lsat.data.types import Sample
from tests.adapters.conftest import toy_samples

EXACT = 1e-4  # fp32 shared vs plain: the issue asks for <= 1e-3; measured ~1e-7 here


def add_random_adapter(rec: LoraRecommender, name: str, layers: list[int] | None, seed: int):
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj"],
        layers_to_transform=layers,
        init_lora_weights=False,
    )
    torch.manual_seed(seed)
    rec.set_lora_state(name, _scaled_state(rec, config, name), config)


def _scaled_state(rec: LoraRecommender, config: LoraConfig, name: str) -> dict:
    rec._add(f"{name}-init", config)
    state = {k: v * 3.0 for k, v in rec.lora_state(f"{name}-init").items()}
    rec.delete_adapter(f"{name}-init")
    return state


def user_samples(user: str, items: range, history_seed: int) -> list[Sample]:
    rng = np.random.default_rng(history_seed)
    history = tuple(str(i) for i in rng.choice(40, 6, replace=False))
    labels = tuple(int(x) for x in rng.integers(0, 2, 6))
    return [Sample(f"{user}-{i}", user, str(i), 0, i % 2, history, labels) for i in items]


@pytest.mark.parametrize(
    ("tokens", "prefix"),
    [
        ([[1, 2, 3], [1, 2, 4]], (1, 2)),
        ([[1, 2, 3], [1, 2, 3]], (1, 2)),  # identical prompts keep one suffix token each
        ([[5], [5, 6]], ()),
        ([[9, 1], [8, 1]], ()),
        ([[1, 2, 3, 4]], ()),  # a lone prompt runs whole, in one pass
    ],
)
def test_split_shared_prefix(tokens, prefix) -> None:
    group = split_shared_prefix(tokens)
    assert group.prefix == prefix
    assert [list(group.prefix + s) for s in group.suffixes] == tokens
    assert min(len(s) for s in group.suffixes) >= 1


def test_split_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        split_shared_prefix([[1], []])


@pytest.mark.parametrize(
    ("lengths", "prefix_len", "heads", "kv_heads", "bucket_size"),
    [
        ([3, 1, 4], 5, 6, 2, None),
        ([2, 2], 0, 4, 4, None),
        ([1], 7, 4, 1, None),
        ([5, 3, 2, 6], 1, 6, 3, None),
        ([1, 2, 2, 3, 6], 4, 6, 2, 2),
        ([1, 2, 2, 3, 6], 0, 6, 2, 3),
    ],
)
def test_suffix_attention_equals_dense_masked_attention(
    lengths, prefix_len, heads, kv_heads, bucket_size
):
    torch.manual_seed(0)
    layout = SuffixLayout(lengths, bucket_size=bucket_size)
    streams, dim = 2, 8
    q = torch.randn(streams, layout.total, heads, dim)
    k, v = (torch.randn(streams, layout.total, kv_heads, dim) for _ in range(2))
    pk = torch.randn(streams, kv_heads, prefix_len, dim) if prefix_len else None
    pv = torch.randn(streams, kv_heads, prefix_len, dim) if prefix_len else None
    ours = suffix_attention(q, k, v, layout, 0.3, pk, pv)
    reference = dense_reference_attention(q, k, v, layout, 0.3, pk, pv)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@pytest.fixture
def two_adapters(tiny_recommender: LoraRecommender) -> LoraRecommender:
    """Long on layers 2-3, short on layer 3 only (the trainer's top-layers shape)."""
    add_random_adapter(tiny_recommender, "long", [2, 3], seed=1)
    add_random_adapter(tiny_recommender, "short", [3], seed=2)
    return tiny_recommender


def plain(rec: LoraRecommender, names, samples) -> dict:
    return rec.score_many(names, samples, bf16=False)


@pytest.mark.parametrize(("max_tokens", "bucket_size"), [(4096, 16), (25, 2)])
def test_groups_equal_the_plain_path(
    two_adapters: LoraRecommender, max_tokens: int, bucket_size: int
) -> None:
    two_adapters._ranker = PrefixRanker(max_tokens=max_tokens, bucket_size=bucket_size)
    groups = [
        user_samples("a", range(0, 17), 1),
        user_samples("b", range(20, 22), 2),
        user_samples("c", range(5, 6), 3),
        [],
    ]
    names = ["long", "short", None]
    got = two_adapters.score_groups(names, groups, bf16=False)
    for group, scores in zip(groups, got, strict=True):
        want = plain(two_adapters, names, group)
        for name in names:
            assert scores[name].shape == (len(group),)
            np.testing.assert_allclose(scores[name], want[name], atol=EXACT)
    assert np.abs(got[0]["long"] - got[0]["short"]).max() > 1e-3  # the adapters really differ


def test_adapters_on_every_layer_and_a_lone_adapter(tiny_recommender: LoraRecommender) -> None:
    add_random_adapter(tiny_recommender, "everywhere", None, seed=4)
    add_random_adapter(tiny_recommender, "top", [3], seed=5)
    samples = user_samples("a", range(10), 7)
    for names in (["everywhere", "top"], ["top"], [None], ["top", "top"]):
        got = tiny_recommender.score_groups(names, [samples], bf16=False)[0]
        want = plain(tiny_recommender, names, samples)
        for name in names:
            np.testing.assert_allclose(got[name], want[name], atol=EXACT)


def test_bf16_agrees_with_fp32_within_tolerance(two_adapters: LoraRecommender) -> None:
    """bf16 ranking vs fp32: |Δp| <= 0.01 and AUC within 0.02 (tiny random model, toy data;
    measured over three seeds: |Δp| <= 0.0011, |ΔAUC| <= 0.0045)."""
    samples = toy_samples(60, seed=3)
    users = {}
    for s in samples:
        users.setdefault((s.history_item_ids, s.history_labels), []).append(s)
    groups = list(users.values())
    fp32 = two_adapters.score_groups(["long", "short"], groups, bf16=False)
    bf16 = two_adapters.score_groups(["long", "short"], groups, bf16=True)
    labels = [s.label for g in groups for s in g]
    for name in ("long", "short"):
        a = np.concatenate([g[name] for g in fp32])
        b = np.concatenate([g[name] for g in bf16])
        assert np.abs(a - b).max() <= 0.01
        assert abs(auc(labels, a) - auc(labels, b)) <= 0.02
        assert not np.array_equal(a, b)  # bf16 really ran


def test_dora_adapter_is_unsupported_and_falls_back(tiny_recommender: LoraRecommender) -> None:
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_dora=True)
    tiny_recommender._add("dora", config)
    reason = tiny_recommender._ranker.unsupported(tiny_recommender.model, ["dora"])
    assert reason is not None and "dora" in reason
    ids = answer_token_ids(tiny_recommender.base.tokenizer)
    with pytest.raises(RankingUnsupported, match="dora"):
        tiny_recommender._ranker.score(
            tiny_recommender.model, [PromptGroup((1,), ((2,),))], ["dora"], ids
        )
    samples = user_samples("a", range(6), 1)
    got = tiny_recommender.score_groups(["dora"], [samples], bf16=False)[0]["dora"]
    np.testing.assert_allclose(got, plain(tiny_recommender, ["dora"], samples)["dora"], atol=1e-6)


def test_the_ranker_leaves_the_model_as_it_was(two_adapters: LoraRecommender) -> None:
    samples = user_samples("a", range(8), 2)
    before = plain(two_adapters, ["long"], samples)["long"]
    two_adapters.model.train()
    two_adapters.score_groups(["long", "short"], [samples], bf16=True)
    assert two_adapters.model.training
    two_adapters.model.eval()
    np.testing.assert_allclose(plain(two_adapters, ["long"], samples)["long"], before, atol=1e-7)


@pytest.mark.smollm2
def test_smollm2_shared_prefix_equals_plain_path(smollm2_base) -> None:
    titles = {str(i): f"Movie number {i} ({1980 + i % 20})" for i in range(60)}
    rec = LoraRecommender(smollm2_base, titles, progress=False)
    layers = list(top_layers(4, 30))  # the trainer's default adapter shape
    for seed, name in enumerate(("long", "short")):
        config = TrainConfig(layers=tuple(layers)).lora_config()
        config.init_lora_weights = False
        torch.manual_seed(seed)
        rec._add(f"{name}-init", config)
        state = {k: v * 0.1 for k, v in rec.lora_state(f"{name}-init").items()}
        rec.delete_adapter(f"{name}-init")
        rec.set_lora_state(name, state, config)
    samples = user_samples("u", range(20, 44), 5)
    got = rec.score_groups(["long", "short"], [samples], bf16=False)[0]
    want = plain(rec, ["long", "short"], samples)
    for name in ("long", "short"):
        assert np.abs(got[name] - want[name]).max() <= 1e-3
    bf16 = rec.score_groups(["long", "short"], [samples], bf16=True)[0]
    assert np.abs(bf16["long"] - want["long"]).max() <= 0.05
