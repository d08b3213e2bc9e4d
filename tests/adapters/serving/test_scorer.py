"""The scorer end to end: tiny Llama, real tansu broker, SQLite registry, real HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lsat.adapters.lifecycle.publication import AdapterRef, ServingSet
from lsat.adapters.lifecycle.publisher import ServingSetPublisher
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.model.base_model import tiny_llama
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.serving import Scorer
from lsat.core.settings import KafkaSettings, Settings

pytestmark = pytest.mark.kafka

TOKEN = "s3cret-token"
HISTORY = [{"item_id": str(i), "label": i % 2} for i in range(6)]


def call(url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw.decode()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def serving_set(*versions: AdapterVersion, alpha: float = 0.5) -> ServingSet:
    refs = {v.kind: AdapterRef.of(v) for v in versions}
    return ServingSet(
        long=refs.get("long"),
        short=refs.get("short"),
        merged=refs.get("merged"),
        alpha=alpha,
        merge_weight=None,
        window_id=None,
        published_s=time.time(),
    )


@pytest.fixture
def scorer(
    serving_kafka: KafkaSettings,
    registry: RegistryStore,
    register_adapter: Callable[..., AdapterVersion],
) -> Iterator[Scorer]:
    long1 = register_adapter("long", 1)
    short1 = register_adapter("short", 2, alpha=0.7)
    registry.set_alias("serving-long", "long", long1.version, reason="test", actor="test")
    registry.set_alias("serving-short", "short", short1.version, reason="test", actor="test")
    titles = {str(i): f"Film {i}" for i in range(40)}
    recommender = LoraRecommender(
        tiny_llama(0, hidden_size=128, num_layers=4), titles, progress=False
    )
    settings = Settings(admin_token=TOKEN, kafka=serving_kafka)
    with Scorer(recommender, registry, settings, port=0) as running:
        yield running


@pytest.fixture
def publisher(serving_kafka: KafkaSettings) -> Iterator[ServingSetPublisher]:
    publish = ServingSetPublisher(serving_kafka)
    yield publish
    publish.close()


def score(scorer: Scorer, items: list[str]) -> dict[str, Any]:
    status, body = call(
        f"{scorer.url}/score", {"user_id": "u1", "item_ids": items, "history": HISTORY}
    )
    assert status == 200, body
    return body


def test_serves_the_registry_set_on_start_then_swaps_to_a_published_set(
    scorer: Scorer,
    publisher: ServingSetPublisher,
    register_adapter: Callable[..., AdapterVersion],
    registry: RegistryStore,
) -> None:
    status, adapters = call(f"{scorer.url}/adapters")
    assert status == 200 and adapters["versions"] == {"long": 1, "short": 1}
    assert adapters["alpha"] == 0.7
    before = score(scorer, ["3", "4"])
    assert before["versions"] == {"long": 1, "short": 1}
    first = before["items"][0]
    assert first["p_combined"] == pytest.approx(0.7 * first["p_long"] + 0.3 * first["p_short"])

    short2 = register_adapter("short", 3)
    publisher(serving_set(registry.get("long", 1), short2, alpha=0.25))
    assert wait_for(lambda: call(f"{scorer.url}/adapters")[1]["versions"]["short"] == 2)
    after = score(scorer, ["3", "4"])
    assert after["versions"] == {"long": 1, "short": 2} and after["alpha"] == 0.25
    assert after["items"][0]["p_long"] == pytest.approx(first["p_long"])  # long reused
    assert after["items"][0]["p_short"] != pytest.approx(first["p_short"])
    held = scorer.swapper.recommender.adapter_names
    assert len(held) == 2, f"old short adapter not deleted: {held}"

    metrics = call(f"{scorer.url}/metrics")[1]
    for name in (
        "lsat_scoring_latency_seconds_bucket",
        'lsat_scoring_requests_total{endpoint="/score",status="200"}',
        "lsat_hot_swap_latency_seconds_count 2.0",
        'lsat_active_adapter_version{kind="short"} 2.0',
        "lsat_ensemble_alpha 0.25",
    ):
        assert name in metrics


def test_concurrent_requests_each_see_one_consistent_set(
    scorer: Scorer,
    publisher: ServingSetPublisher,
    register_adapter: Callable[..., AdapterVersion],
    registry: RegistryStore,
) -> None:
    items = ["5", "6"]
    reference = {1: score(scorer, items)["items"]}
    short2 = register_adapter("short", 4)
    responses: list[dict[str, Any]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            responses.append(score(scorer, items))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    publisher(serving_set(registry.get("long", 1), short2, alpha=0.4))
    swapped = wait_for(lambda: call(f"{scorer.url}/adapters")[1]["versions"]["short"] == 2)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert swapped
    reference[2] = score(scorer, items)["items"]
    alphas = {1: 0.7, 2: 0.4}
    seen = set()
    for response in responses:
        version = response["versions"]["short"]
        seen.add(version)
        assert response["alpha"] == alphas[version]
        for got, want in zip(response["items"], reference[version], strict=True):
            assert got["p_short"] == pytest.approx(want["p_short"], abs=1e-6)
            assert got["p_combined"] == pytest.approx(want["p_combined"], abs=1e-6)
    assert 2 in seen


def test_a_corrupt_adapter_is_refused_and_the_old_set_keeps_serving(
    scorer: Scorer,
    publisher: ServingSetPublisher,
    register_adapter: Callable[..., AdapterVersion],
    registry: RegistryStore,
) -> None:
    bad = register_adapter("short", 5)
    weights = f"{bad.path}/adapter_model.safetensors"
    with open(weights, "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\xff\xff\xff\x7f")
    publisher(serving_set(registry.get("long", 1), bad))
    assert wait_for(
        lambda: 'lsat_hot_swaps_total{outcome="refused"} 1.0' in call(f"{scorer.url}/metrics")[1]
    )
    assert call(f"{scorer.url}/adapters")[1]["versions"] == {"long": 1, "short": 1}
    assert score(scorer, ["1"])["versions"] == {"long": 1, "short": 1}
    assert len(scorer.swapper.recommender.adapter_names) == 2


def test_admin_needs_the_token_and_promote_then_rollback_swap_the_scorer(
    scorer: Scorer, register_adapter: Callable[..., AdapterVersion]
) -> None:
    short2 = register_adapter("short", 6, alpha=0.3)
    body = {"kind": "short", "version": short2.version}
    url = f"{scorer.url}/admin/promote"
    assert call(url, body)[0] == 401
    assert call(url, body, token="wrong")[0] == 403
    assert call(f"{scorer.url}/admin/rollback", {"alias": "serving-short"}, token="x")[0] == 403
    status, answer = call(url, body, token=TOKEN)
    assert status == 200, answer
    assert answer["target"] == "short/v2"
    assert wait_for(lambda: call(f"{scorer.url}/adapters")[1]["versions"]["short"] == 2)
    status, answer = call(f"{scorer.url}/admin/rollback", {"alias": "serving-short"}, token=TOKEN)
    assert status == 200 and answer["target"] == "short/v1", answer
    assert wait_for(lambda: call(f"{scorer.url}/adapters")[1]["versions"]["short"] == 1)
    assert score(scorer, ["2"])["versions"]["short"] == 1
    status, answer = call(url, {"kind": "short", "version": 99}, token=TOKEN)
    assert status == 404 and "99" in answer["error"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/score", b"{oops", 400, "not valid JSON"),
        ("/score", {"user_id": "ghost", "item_id": "1"}, 400, "unknown user 'ghost'"),
        ("/recommend", {"user_id": "u", "candidates": [], "k": 1}, 400, "candidates"),
        ("/nope", {}, 404, "no route"),
    ],
)
def test_bad_requests_get_clear_errors(
    scorer: Scorer, path: str, body: Any, status: int, message: str
) -> None:
    got_status, answer = call(f"{scorer.url}{path}", body)
    assert got_status == status and message in answer["error"]


def test_recommend_ranks_by_combined_score_and_cold_items_score_by_id(scorer: Scorer) -> None:
    candidates = ["1", "2", "3", "cold-99"]
    status, ranked = call(
        f"{scorer.url}/recommend",
        {"user_id": "u1", "candidates": candidates, "k": 3, "history": HISTORY},
    )
    assert status == 200, ranked
    scored = {e["item_id"]: e["p_combined"] for e in score(scorer, candidates)["items"]}
    expected = sorted(candidates, key=lambda i: -scored[i])[:3]
    assert [e["item_id"] for e in ranked["items"]] == expected
    assert call(f"{scorer.url}/healthz")[1] == {"status": "ok", "serving": True}


def test_health_and_readiness_fail_when_the_versions_consumer_dies(scorer: Scorer) -> None:
    assert call(f"{scorer.url}/healthz") == (200, {"status": "ok", "serving": True})
    status, ready = call(f"{scorer.url}/readyz")
    assert status == 200 and ready["checks"]["versions_consumer"] == "ok", ready
    assert scorer.consumer is not None
    scorer.consumer._consumer.close()  # type: ignore[union-attr]  # the client fails under it
    assert wait_for(lambda: not scorer.consumer.alive)  # type: ignore[union-attr]
    assert scorer.consumer.error is not None and "closed" in scorer.consumer.error
    status, health = call(f"{scorer.url}/healthz")
    assert status == 503 and health["status"] == "failing" and health["serving"] is True
    assert "adapter.versions consumer" in health["reason"]
    status, ready = call(f"{scorer.url}/readyz")
    assert status == 503 and ready["status"] == "not ready"
    assert ready["checks"] == {"adapters": "ok", "versions_consumer": "dead", "store": "ok"}
    assert "lsat_versions_consumer_up 0.0" in call(f"{scorer.url}/metrics")[1]
    assert score(scorer, ["1"])["versions"] == {"long": 1, "short": 1}  # still answers


def test_with_model_thread_false_the_model_runs_where_serve_model_is_called(
    make_scorer: Callable[..., Scorer],
) -> None:
    """``lsat serve`` runs the model on its main thread: requests wait for ``serve_model`` and
    ``stop`` from another thread ends it after they are answered."""
    scorer = make_scorer(model_thread=False)
    service = scorer.service
    ran_on: list[str] = []
    run_batch = service.batcher.run_batch

    def recording(jobs: list) -> list:
        ran_on.append(threading.current_thread().name)
        return run_batch(jobs)

    service.batcher.run_batch = recording
    answers: list[tuple[int, Any]] = []
    body = {"user_id": "u1", "item_id": "3", "history": HISTORY}
    client = threading.Thread(target=lambda: answers.append(call(f"{scorer.url}/score", body)))
    client.start()

    def stop_when_answered() -> None:
        client.join(60)
        scorer.stop()

    threading.Thread(target=stop_when_answered).start()
    model_loop = threading.Thread(target=scorer.serve_model, name="main-like")
    model_loop.start()
    model_loop.join(90)
    assert not model_loop.is_alive()  # stop() ended serve_model
    assert answers and answers[0][0] == 200, answers
    assert 0 < answers[0][1]["items"][0]["p_combined"] < 1
    assert ran_on == ["main-like"]
