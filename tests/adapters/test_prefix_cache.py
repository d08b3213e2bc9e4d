"""The prefix keys/values cache across requests: same scores as without it, reused by one
user's next request (a lone candidate included), forgotten when adapters change (tiny Llama)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsat.adapters.model.base_model import BaseLM
from lsat.adapters.model.prefix_cache import PrefixKVCache
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig
from tests.adapters.conftest import TOY_TITLES
from tests.adapters.test_prefix_ranking import EXACT, add_random_adapter, user_samples

NAMES = ["long", "short", None]


def recommender(base: BaseLM, cache_bytes: int) -> LoraRecommender:
    rec = LoraRecommender(
        base,
        TOY_TITLES,
        train_config=TrainConfig(batch_size=8),
        prefix_cache_bytes=cache_bytes,
        progress=False,
    )
    add_random_adapter(rec, "long", [2, 3], seed=1)
    add_random_adapter(rec, "short", [3], seed=2)
    return rec


@pytest.fixture
def cached(tiny_base: BaseLM) -> LoraRecommender:
    return recommender(tiny_base, 64 << 20)


def assert_same(got: dict, want: dict) -> None:
    for name in NAMES:
        np.testing.assert_allclose(got[name], want[name], atol=EXACT)


def test_a_users_next_requests_reuse_the_prefix_with_the_same_scores(
    cached: LoraRecommender,
) -> None:
    many, lone, other = (
        user_samples("a", range(0, 9), 1),
        user_samples("a", range(30, 31), 1),
        user_samples("b", range(0, 3), 2),
    )
    cache = cached.prefix_cache
    assert cache is not None
    first = cached.score_groups(NAMES, [many], bf16=False)[0]
    assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
    again = cached.score_groups(NAMES, [lone], bf16=False)[0]  # one item, same history
    assert (cache.hits, cache.misses) == (1, 1)
    cached.score_groups(NAMES, [other], bf16=False)
    assert (cache.hits, cache.misses, len(cache)) == (1, 2, 2)
    assert_same(first, cached.score_many(NAMES, many, bf16=False))
    assert_same(again, cached.score_many(NAMES, lone, bf16=False))


def test_a_lone_prompt_is_cut_where_the_history_ends(cached: LoraRecommender) -> None:
    (lone,) = user_samples("a", range(30, 31), 1)
    (ids,) = cached._encode([lone]).ids
    group = cached._split([lone], [ids])
    assert_cut_at_the_target(cached, lone, group, ids)


def assert_cut_at_the_target(rec: LoraRecommender, sample, group, ids) -> None:
    prefix, (suffix,) = rec.base.tokenizer.decode(list(group.prefix)), group.suffixes
    assert list(group.prefix + suffix) == list(ids)
    assert "User Unpreference" in prefix
    assert prefix.rstrip(' "').endswith("target movie")  # the history is all in the prefix
    assert rec.titles[sample.item_id] in rec.base.tokenizer.decode(list(suffix))


def test_the_same_prefix_twice_in_one_call_runs_once(cached: LoraRecommender) -> None:
    cache = cached.prefix_cache
    assert cache is not None
    first, second = user_samples("a", range(0, 4), 1), user_samples("a", range(10, 12), 1)
    got = cached.score_groups(NAMES, [first, second], bf16=False)
    assert (cache.misses, len(cache)) == (1, 1)
    assert_same(got[1], cached.score_many(NAMES, second, bf16=False))


def test_replacing_an_adapter_forgets_what_its_name_cached(cached: LoraRecommender) -> None:
    samples = user_samples("a", range(0, 5), 1)
    before = cached.score_groups(NAMES, [samples], bf16=False)[0]
    add_random_adapter(cached, "short", [3], seed=7)  # same name, other weights
    assert cached.prefix_cache is not None and len(cached.prefix_cache) == 0
    after = cached.score_groups(NAMES, [samples], bf16=False)[0]
    assert_same(after, cached.score_many(NAMES, samples, bf16=False))
    assert np.abs(after["short"] - before["short"]).max() > 1e-3  # the new weights count
    cached.delete_adapter("long")
    assert len(cached.prefix_cache) == 0


def test_without_a_cache_the_split_is_the_shared_prefix(tiny_base: BaseLM) -> None:
    rec = recommender(tiny_base, 0)
    assert rec.prefix_cache is None
    (lone,) = user_samples("a", range(30, 31), 1)
    (ids,) = rec._encode([lone]).ids
    assert rec._split([lone], [ids]).prefix == ()  # one pass, as before


def test_the_cache_is_bounded_in_bytes() -> None:
    kv = [(torch.zeros(1, 2, 8, 4), torch.zeros(1, 2, 8, 4))]  # 512 bytes
    cache = PrefixKVCache(max_bytes=1200)
    for key in range(4):
        assert cache.put(key, kv)
        assert cache.bytes <= 1200
    assert len(cache) == 2 and cache.get(0) is None and cache.get(3) is kv
    assert not PrefixKVCache(max_bytes=100).put("big", kv)
    with pytest.raises(ValueError, match="max_bytes"):
        PrefixKVCache(-1)


@pytest.mark.smollm2
def test_smollm2_cut_and_cached_lone_score(smollm2_base: BaseLM) -> None:
    titles = {str(i): f"{'The ' if i % 3 else ''}Movie {i} ({1980 + i % 20})" for i in range(60)}
    rec = LoraRecommender(smollm2_base, titles, prefix_cache_bytes=64 << 20, progress=False)
    many, lone = user_samples("u", range(20, 28), 5), user_samples("u", range(40, 41), 5)
    for sample in many + lone:
        (ids,) = rec._encode([sample]).ids
        assert_cut_at_the_target(rec, sample, rec._split([sample], [ids]), ids)
    rec.score_groups([None], [many], bf16=False)
    got = rec.score_groups([None], [lone], bf16=False)[0][None]
    assert rec.prefix_cache is not None and rec.prefix_cache.hits == 1
    assert np.abs(got - rec.score_many([None], lone, bf16=False)[None]).max() <= 1e-3
