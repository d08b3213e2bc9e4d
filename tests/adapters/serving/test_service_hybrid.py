"""The scorer serves the hybrid combiner as the combined score when the serving set has one
(features: the adapters' logits and the store's like counts, as of now), falls back to the α
ensemble when a feature is missing, and prompts each adapter the way it was trained."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from test_service import HISTORY, TITLES, add_adapter

from lsat.adapters.lifecycle.adapter_prompt import AdapterPrompt
from lsat.adapters.lifecycle.hybrid_features import hybrid_columns
from lsat.adapters.model.base_model import tiny_llama
from lsat.adapters.model.combine import ensemble
from lsat.adapters.model.hybrid import HybridCombiner
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.serving.api import BadRequest
from lsat.adapters.serving.service import ScoringService, StoreHistory
from lsat.adapters.serving.state import LoadedSet, ServingState
from lsat.data.types import Interaction, Sample
from lsat.stream.store import SampleStore
from lsat.stream.store.records import IngestItem

ITEMS = ["10", "11", "12", "13"]
RATES_AND_LLM = HybridCombiner(
    ("logit_item_rate", "logit_history_rate", "logit_long", "logit_short"),
    (1.5, 0.5, 0.3, 0.2),
    0.1,
    (0.0, 0.0, 0.0, 0.0),
    (1.0, 1.0, 2.0, 2.0),
    1.0,
)


@pytest.fixture
def recommender() -> LoraRecommender:
    rec = LoraRecommender(tiny_llama(0, hidden_size=128, num_layers=4), TITLES, progress=False)
    add_adapter(rec, "long-a", [2, 3], seed=1)
    add_adapter(rec, "short-a", [3], seed=2)
    return rec


@pytest.fixture
def store_history(tmp_path: Path) -> StoreHistory:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = SampleStore(url)
    events = []
    for n, item in enumerate(ITEMS):  # item 10 liked by 1 of 4 fans, 13 by 4 of 4
        events += [Interaction(f"fan{k}", item, 10 * n + k, int(k <= n)) for k in range(4)]
    events += [Interaction("u1", item, 100 + k, label) for k, (item, label) in enumerate(HISTORY)]
    store.ingest_many([IngestItem(e) for e in events])
    store.close()
    return StoreHistory(url)


def serving_set(hybrid: HybridCombiner | None, **prompts: AdapterPrompt) -> ServingState:
    state = ServingState()
    loaded = LoadedSet(
        {"long": "long-a", "short": "short-a"},
        {"long": 1, "short": 2},
        0.6,
        prompts=prompts,
        hybrid=hybrid,
    )
    state.swap(loaded)
    return state


def score(recommender, state, source=None, history=None) -> dict:  # type: ignore[no-untyped-def]
    service = ScoringService(recommender, state, threading.RLock(), source, bf16=False)
    try:
        return service.score("u1", ITEMS, history)
    finally:
        service.close()


def test_the_hybrid_is_the_combined_score_with_live_like_counts(recommender, store_history) -> None:
    answer = score(recommender, serving_set(RATES_AND_LLM), store_history)
    assert answer["combined"] == "hybrid"
    items = answer["items"]
    probs = {k: np.array([e[f"p_{k}"] for e in items]) for k in ("long", "short")}
    history = store_history.history("u1", 10)
    features = store_history.features("u1", ITEMS)
    assert [features[i].item_count for i in ITEMS] == [4, 4, 4, 4]
    samples = [
        Sample("e", "u1", i, 0, 0, tuple(h for h, _ in history), tuple(y for _, y in history),
               features[i])
        for i in ITEMS
    ]  # fmt: skip
    expected = RATES_AND_LLM.predict_proba(hybrid_columns(samples, probs))
    assert np.allclose([e["p_combined"] for e in items], expected)
    assert np.allclose(
        [e["p_ensemble"] for e in items], ensemble(probs["long"], probs["short"], 0.6)
    )
    assert items[-1]["p_combined"] > items[0]["p_combined"]  # the item rate carries the hybrid


def test_without_like_counts_the_ensemble_serves(recommender) -> None:
    answer = score(recommender, serving_set(RATES_AND_LLM), history=HISTORY)
    assert answer["combined"] == "ensemble"
    for entry in answer["items"]:
        assert entry["p_combined"] == entry["p_ensemble"]


def test_a_combiner_of_history_rate_and_logits_needs_no_store(recommender) -> None:
    combiner = HybridCombiner(
        ("logit_history_rate", "logit_short"), (1.0, 1.0), 0.0, (0.0, 0.0), (1.0, 1.0), 1.0
    )
    answer = score(recommender, serving_set(combiner), history=HISTORY)
    assert answer["combined"] == "hybrid"
    short = np.array([e["p_short"] for e in answer["items"]])
    rate = (sum(y for _, y in HISTORY) + 1) / (len(HISTORY) + 2)
    expected = 1 / (1 + np.exp(-(np.log(rate / (1 - rate)) + np.log(short / (1 - short)))))
    assert np.allclose([e["p_combined"] for e in answer["items"]], expected)


def test_each_adapter_is_prompted_the_way_it_was_trained(recommender, store_history) -> None:
    chat = AdapterPrompt("chat", "film")
    answer = score(recommender, serving_set(None, short=chat), store_history)
    history = store_history.history("u1", 10)
    samples = [
        Sample("e", "u1", i, 0, 0, tuple(h for h, _ in history), tuple(y for _, y in history))
        for i in ITEMS
    ]
    recommender.prompt_format, recommender.item_noun = "tallrec", "movie"
    long = recommender.score_many(["long-a"], samples, bf16=False)["long-a"]
    recommender.prompt_format, recommender.item_noun = "chat", "film"
    short = recommender.score_many(["short-a"], samples, bf16=False)["short-a"]
    assert np.allclose([e["p_long"] for e in answer["items"]], long, atol=1e-5)
    assert np.allclose([e["p_short"] for e in answer["items"]], short, atol=1e-5)
    recommender.prompt_format, recommender.item_noun = "tallrec", "movie"
    tallrec = recommender.score_many(["short-a"], samples, bf16=False)["short-a"]
    assert not np.allclose(short, tallrec, atol=1e-5)  # the prompt makes a difference


def test_a_hints_adapter_without_like_counts_is_a_bad_request(recommender) -> None:
    state = serving_set(None, short=AdapterPrompt("tallrec_hints", "movie"))
    with pytest.raises(BadRequest, match="like-count hints"):
        score(recommender, state, history=HISTORY)


def test_the_swapper_reads_each_adapter_s_prompt_and_the_set_s_combiner(
    tmp_path: Path, random_adapter
) -> None:
    from lsat.adapters.lifecycle.artifacts import save_adapter, sha256_file
    from lsat.adapters.lifecycle.publication import AdapterRef, ServingSet
    from lsat.adapters.serving.metrics import ServingMetrics
    from lsat.adapters.serving.swapper import AdapterSwapper

    refs = {}
    for kind, seed, prompt in (("long", 1, {}), ("short", 2, AdapterPrompt("chat", "film"))):
        state, config = random_adapter(seed)
        metadata = {"base_model": "tiny-llama", "kind": kind, **(prompt and prompt.metadata())}
        folder = save_adapter(tmp_path / kind, state, config, metadata)
        sha = sha256_file(folder / "adapter_model.safetensors")
        refs[kind] = AdapterRef(kind, 1, str(folder), sha)
    rec = LoraRecommender(tiny_llama(0, hidden_size=128, num_layers=4), TITLES, progress=False)
    swapper = AdapterSwapper(rec, ServingState(), threading.RLock(), ServingMetrics())
    first = swapper.apply(ServingSet(refs["long"], refs["short"], None, 0.5, None, 3, 1.0))
    assert first is not None and first.hybrid is None
    assert first.prompt("long") == AdapterPrompt() and first.prompt("short").item_noun == "film"
    with_hybrid = ServingSet(refs["long"], refs["short"], None, 0.5, None, 3, 2.0, RATES_AND_LLM)
    second = swapper.apply(with_hybrid)  # same adapters, a combiner now: a new set, no reload
    assert second is not None and second.hybrid == RATES_AND_LLM
    assert second.names == first.names and second.prompt("short") == first.prompt("short")
    assert second.describe()["combined"] == "hybrid"
