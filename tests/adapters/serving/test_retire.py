"""The swapper never frees an adapter a running request still uses (issue 9, item 6)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from lsat.adapters.lifecycle.publication import AdapterRef, ServingSet
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.serving import Scorer

HISTORY = [{"item_id": str(i), "label": i % 2} for i in range(6)]


def _score(scorer: Scorer) -> dict[str, Any]:
    body = json.dumps({"user_id": "u1", "item_ids": ["3", "4"], "history": HISTORY}).encode()
    request = urllib.request.Request(f"{scorer.url}/score", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _wait(predicate: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_retired_adapter_is_freed_only_after_its_last_request(
    make_scorer: Callable[..., Scorer],
    register_adapter: Callable[..., AdapterVersion],
    registry: RegistryStore,
) -> None:
    scorer = make_scorer()
    reference = _score(scorer)
    old = scorer.state.current
    assert old is not None
    old_short = old.names["short"]
    short2 = register_adapter("short", 7, alpha=0.2)
    refs = {v.kind: AdapterRef.of(v) for v in (registry.get("long", 1), short2)}
    new_set = ServingSet(refs["long"], refs["short"], None, 0.2, None, None, time.time())
    answers: list[dict[str, Any]] = []
    with scorer.model_lock:  # the request below takes the old set, then waits for the model
        request = threading.Thread(target=lambda: answers.append(_score(scorer)))
        request.start()
        assert _wait(lambda: scorer.state.in_flight(old) == 1)
        scorer.swapper.apply(new_set)  # same thread: the lock is re-entrant
        assert scorer.state.current is not old
        assert old_short in scorer.swapper.recommender.adapter_names  # kept: still in use
        assert scorer.state.pending_free() == (old_short,)
    request.join(60)
    assert answers and answers[0]["versions"] == {"long": 1, "short": 1}
    assert answers[0]["items"] == reference["items"]  # scored with the old adapter, intact
    assert _wait(lambda: old_short not in scorer.swapper.recommender.adapter_names)
    assert scorer.state.pending_free() == ()
    metrics = scorer.metrics.render().decode()
    assert "lsat_hot_swap_deferred_frees_total 1.0" in metrics
    assert "lsat_hot_swap_pending_frees 0.0" in metrics
    assert _score(scorer)["versions"] == {"long": 1, "short": 2}
