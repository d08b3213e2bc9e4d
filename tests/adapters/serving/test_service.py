"""ScoringService on the tiny Llama: shared-prefix scores equal the plain path, concurrent
requests share forward passes, overload is refused, /recommend picks its own candidates."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig

from lsat.adapters.model.base_model import tiny_llama
from lsat.adapters.model.precision import native_bf16
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.serving.api import BadRequest
from lsat.adapters.serving.service import ScoringService, StoreHistory
from lsat.adapters.serving.state import LoadedSet, Overloaded, ServingState
from lsat.data.types import Interaction, Item, Sample
from lsat.stream.store import SampleStore
from lsat.stream.store.records import IngestItem

HISTORY = [(str(i), i % 2) for i in range(6)]
TITLES = {str(i): f"Film {i}" for i in range(40)}


def add_adapter(rec: LoraRecommender, name: str, layers: list[int], seed: int) -> None:
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], layers_to_transform=layers
    )
    rec._add(name, config)
    torch.manual_seed(seed)
    with torch.no_grad():
        for param_name, param in rec.model.named_parameters():
            if f".{name}." in param_name and "lora_" in param_name:
                param.copy_(torch.randn_like(param) * 0.3)


@pytest.fixture
def recommender() -> LoraRecommender:
    rec = LoraRecommender(tiny_llama(0, hidden_size=128, num_layers=4), TITLES, progress=False)
    add_adapter(rec, "long-a", [2, 3], seed=1)
    add_adapter(rec, "short-a", [3], seed=2)
    add_adapter(rec, "short-b", [3], seed=3)
    return rec


@pytest.fixture
def state() -> ServingState:
    state = ServingState()
    state.swap(LoadedSet({"long": "long-a", "short": "short-a"}, {"long": 1, "short": 1}, 0.7))
    return state


@pytest.fixture
def service(recommender: LoraRecommender, state: ServingState):
    service = ScoringService(recommender, state, threading.RLock(), bf16=False)
    yield service
    service.close()


def wait_until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def plain(rec: LoraRecommender, name: str, items: list[str]) -> np.ndarray:
    history = tuple(i for i, _ in HISTORY), tuple(label for _, label in HISTORY)
    samples = [Sample(f"e{i}", "u1", i, 0, 0, *history) for i in items]
    return rec.score_many([name], samples, bf16=False)[name]


def test_scores_equal_the_plain_path_and_combine_with_alpha(service, recommender) -> None:
    items = [str(i) for i in range(12)]
    answer = service.score("u1", items, HISTORY)
    assert answer["versions"] == {"long": 1, "short": 1} and answer["history_length"] == 6
    long, short = plain(recommender, "long-a", items), plain(recommender, "short-a", items)
    got_long = np.array([e["p_long"] for e in answer["items"]])
    got_short = np.array([e["p_short"] for e in answer["items"]])
    assert np.abs(got_long - long).max() <= 1e-4 and np.abs(got_short - short).max() <= 1e-4
    combined = np.array([e["p_combined"] for e in answer["items"]])
    np.testing.assert_allclose(combined, 0.7 * got_long + 0.3 * got_short, atol=1e-12)
    assert answer["items"][3]["title"] == "Film 3"


def test_bf16_follows_the_hardware_unless_overridden(recommender, state) -> None:
    services = [ScoringService(recommender, state, threading.RLock(), bf16=b) for b in (None, True)]
    try:
        assert services[0].bf16 == native_bf16("cpu") and services[1].bf16 is True
        items = [str(i) for i in range(8)]
        got = np.array([e["p_long"] for e in services[1].score("u1", items, HISTORY)["items"]])
        fp32 = plain(recommender, "long-a", items)
        assert 0 < np.abs(got - fp32).max() < 0.01  # bf16 ran, and stayed close
    finally:
        for service in services:
            service.close()


def test_concurrent_requests_share_forward_passes(service, recommender) -> None:
    requests = [[str(i), str(i + 10)] for i in range(8)]
    want = [service.score("u1", items, HISTORY)["items"] for items in requests]
    before = service.batcher.batches
    answers: list[object] = [None] * len(requests)

    def call(i: int) -> None:
        answers[i] = service.score("u1", requests[i], HISTORY)["items"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    with service.model_lock:  # the worker blocks on the model with request 0: the rest queue up
        threads[0].start()
        wait_until(lambda: service.batcher.running == 1)
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: service.batcher.waiting == len(requests) - 1)
    for thread in threads:
        thread.join(30)
    assert service.batcher.batches - before == 2  # 8 requests, 2 forward passes
    for got, expected in zip(answers, want, strict=True):
        for g, e in zip(got, expected, strict=True):
            assert g["p_combined"] == pytest.approx(e["p_combined"], abs=1e-5)


def test_a_batch_mixing_two_serving_sets_scores_each_with_its_own(recommender) -> None:
    state = ServingState()
    set_a = LoadedSet({"long": "long-a", "short": "short-a"}, {"long": 1, "short": 1}, 0.5)
    set_b = LoadedSet({"long": "long-a", "short": "short-b"}, {"long": 1, "short": 2}, 0.5)
    # a long window that closes once both 2-item requests are in: one batch, two sets
    service = ScoringService(
        recommender, state, threading.RLock(), bf16=False, batch_window_ms=5000, max_batch_items=4
    )
    answers: dict[int, dict] = {}
    threads = []
    try:
        for version, loaded in ((1, set_a), (2, set_b)):
            state.swap(loaded)
            threads.append(
                threading.Thread(
                    target=lambda v=version: answers.__setitem__(
                        v, service.score("u1", ["4", "5"], HISTORY)
                    )
                )
            )
            threads[-1].start()
            wait_until(lambda loaded=loaded: state.in_flight(loaded) == 1)
        for thread in threads:
            thread.join(30)
        assert service.batcher.batches == 1
    finally:
        service.close()
    for version, name in ((1, "short-a"), (2, "short-b")):
        assert answers[version]["versions"]["short"] == version
        got = np.array([e["p_short"] for e in answers[version]["items"]])
        assert np.abs(got - plain(recommender, name, ["4", "5"])).max() <= 1e-4


def test_a_full_queue_is_overloaded(recommender, state) -> None:
    service = ScoringService(
        recommender, state, threading.RLock(), bf16=False, queue_limit=1, batch_window_ms=0
    )
    errors: list[Exception] = []

    def call() -> None:
        try:
            service.score("u1", ["1"], HISTORY)
        except Overloaded as exc:
            errors.append(exc)

    try:
        with service.model_lock:
            threads = [threading.Thread(target=call) for _ in range(4)]
            for thread in threads:
                thread.start()
                time.sleep(0.05)
            deadline = time.monotonic() + 10
            while len(errors) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        for thread in threads:
            thread.join(30)
    finally:
        service.close()
    # one job runs (blocked on the model), one waits, the other two are refused at once
    assert len(errors) == 2 and all(e.reason == "queue_full" for e in errors)


@pytest.fixture
def store_history(tmp_path: Path) -> StoreHistory:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = SampleStore(url)
    likes = {"10": 5, "11": 4, "12": 3, "13": 2, "14": 1}
    events = []
    for item, count in likes.items():
        events += [Interaction(f"fan{k}", item, k, 1) for k in range(count)]
        events += [Interaction("hater", item, 100, 0)]
    events += [Interaction("u1", "10", 200, 1), Interaction("u1", "2", 201, 0)]
    store.ingest_many([IngestItem(e) for e in events])
    for item in ("10", "11", "12"):
        store.upsert_item(Item(item, f"Hit {item}"))
    store.close()
    return StoreHistory(url)


def test_store_candidates_are_the_most_liked_items_the_user_has_not_seen(store_history) -> None:
    assert store_history.candidates("u1", 3) == ["11", "12", "13"]
    assert store_history.candidates("nobody", 2) == ["10", "11"]
    assert store_history.history("u1", 10) == (("10", 1), ("2", 0))


def test_recommend_without_candidates_ranks_the_store_candidates(
    recommender, state, store_history
) -> None:
    service = ScoringService(
        recommender, state, threading.RLock(), store_history, bf16=False, recommend_candidates=3
    )
    try:
        ranked = service.recommend("u1", None, k=2)
        explicit = service.recommend("u1", ["11", "12", "13"], k=2)
        assert ranked["items"] == explicit["items"] and len(ranked["items"]) == 2
        assert {e["item_id"] for e in ranked["items"]} <= {"11", "12", "13"}
        assert ranked["items"][0]["score"] >= ranked["items"][1]["score"]
        with_history = service.recommend("u1", None, k=5, history=[("11", 1), ("12", 0)])
        assert {e["item_id"] for e in with_history["items"]} == {"13", "14"}
    finally:
        service.close()


def test_recommend_without_candidates_or_store_is_a_bad_request(service) -> None:
    with pytest.raises(BadRequest, match="pass candidates"):
        service.recommend("u1", None, k=3, history=HISTORY)
