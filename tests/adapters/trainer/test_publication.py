"""The adapter.versions message: round trip, clear errors, and rebuilding it from aliases."""

from __future__ import annotations

import json

import pytest

from lsat.adapters.lifecycle.publication import (
    AdapterRef,
    PublicationError,
    ServingSet,
    current_serving_set,
    serving_hybrid,
)
from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.model.hybrid import HybridCombiner

SHORT = AdapterRef("short", 2, "/a/short-2", "b" * 64)
LONG = AdapterRef("long", 1, "/a/long-1", "a" * 64)
HYBRID = HybridCombiner(("logit_long", "logit_item_rate"), (0.5, 1.25), -0.1, (0, 0), (1, 2), 1.0)


def _message(**changes: object) -> bytes:
    payload = json.loads(ServingSet(LONG, SHORT, None, 0.3, None, 4, 10.0).to_json())
    payload.update(changes)
    return json.dumps(payload).encode()


def test_round_trip_keeps_every_field() -> None:
    message = ServingSet(LONG, SHORT, None, 0.3, 0.6, 4, 10.0)
    assert ServingSet.from_json(message.to_json()) == message
    assert message.keys == {"long": 1, "short": 2}
    assert message.hybrid is None


def test_round_trip_with_hybrid_weights() -> None:
    message = ServingSet(LONG, SHORT, None, 0.3, 0.6, 4, 10.0, hybrid=HYBRID)
    back = ServingSet.from_json(message.to_json())
    assert back == message and back.hybrid == HYBRID
    assert json.loads(message.to_json())["hybrid"]["features"] == list(HYBRID.features)


def test_a_message_from_before_the_hybrid_still_parses() -> None:
    payload = json.loads(ServingSet(LONG, SHORT, None, 0.3, None, 4, 10.0).to_json())
    del payload["hybrid"]  # what every publisher wrote before the combiner existed
    assert ServingSet.from_json(json.dumps(payload)).hybrid is None


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "must be an object"),
        (_message(schema=2), "schema=2"),
        (_message(alpha=1.5), "alpha=1.5"),
        (_message(alpha="x"), "alpha='x'"),
        (_message(window_id="w"), "window_id='w'"),
        (
            _message(short={"kind": "long", "version": 1, "path": "/p", "sha256": "a" * 64}),
            "short.kind",
        ),
        (
            _message(long={"kind": "long", "version": 0, "path": "/p", "sha256": "a" * 64}),
            "long.version=0",
        ),
        (_message(long={"kind": "long", "version": 1, "path": "/p", "sha256": "a"}), "long.sha256"),
        (_message(long=None, short=None), "at least one adapter"),
        (_message(hybrid=[1]), "hybrid=[1]"),
        (_message(hybrid={"kind": "tree"}), "hybrid: combiner kind 'tree'"),
        (_message(hybrid={**HYBRID.to_dict(), "weights": [1.0]}), "combiner fields differ"),
    ],
)
def test_bad_message_names_the_bad_value(raw: bytes, named: str) -> None:
    with pytest.raises(PublicationError, match=named.replace("(", r"\(").replace("[", r"\[")):
        ServingSet.from_json(raw)


@pytest.mark.parametrize("url_kind", ["sqlite", "postgres"])
def test_current_serving_set_follows_the_aliases(
    url_kind: str, request: pytest.FixtureRequest, tmp_path: object
) -> None:
    url = (
        f"sqlite:///{tmp_path}/r.db"
        if url_kind == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with open_registry(url) as registry:
        assert current_serving_set(registry) is None
        short = registry.register(
            "short",
            path="/a/s1",
            sha256="b" * 64,
            window_id=3,
            metrics={"alpha": 0.4, "hybrid": HYBRID.to_dict()},
        )
        registry.set_alias("serving-short", "short", short.version, reason="t", actor="test")
        alone = current_serving_set(registry, published_s=1.0)
        assert alone is not None and alone.long is None and alone.alpha == 0.0
        assert alone.window_id == 3 and alone.hybrid == HYBRID
        long = registry.register("long", path="/a/l1", sha256="a" * 64, trigger="bootstrap")
        registry.set_alias("serving-long", "long", long.version, reason="t", actor="test")
        merged = registry.register(
            "merged",
            path="/a/m1",
            sha256="c" * 64,
            metrics={"merge_weight": 0.7},
            parents=[long.key, short.key],
        )
        registry.set_alias("serving-merged", "merged", merged.version, reason="t", actor="test")
        both = current_serving_set(registry, published_s=2.0)
        assert both is not None
        assert (both.alpha, both.merge_weight) == (0.4, 0.7)
        assert both.keys == {"long": 1, "short": 1, "merged": 1}
        assert both.merged == AdapterRef("merged", 1, "/a/m1", "c" * 64)


def test_a_short_without_a_combiner_serves_the_long_version_s(tmp_path: object) -> None:
    """Until a short version brings a combiner, the long version's (its bootstrap's rates-only
    one) serves; a short version's own combiner wins; a malformed one is skipped."""
    rates = HybridCombiner(("logit_item_rate",), (1.0,), 0.0, (0.0,), (1.0,), 1.0, "rates only")
    with open_registry(f"sqlite:///{tmp_path}/r.db") as registry:
        long = registry.register(
            "long", path="/a/l1", sha256="a" * 64, metrics={"hybrid": rates.to_dict()}
        )
        registry.set_alias("serving-long", "long", long.version, reason="t", actor="test")
        alone = current_serving_set(registry)
        assert alone is not None and alone.short is None and alone.hybrid == rates
        bare = registry.register("short", path="/a/s1", sha256="b" * 64, window_id=3)
        registry.set_alias("serving-short", "short", bare.version, reason="t", actor="test")
        assert serving_hybrid(bare, long) == (rates, long)
        served = current_serving_set(registry)
        assert served is not None and served.hybrid == rates
        broken = registry.register(
            "short", path="/a/s2", sha256="c" * 64, window_id=4, metrics={"hybrid": {"kind": 1}}
        )
        assert serving_hybrid(broken, long) == (rates, long)
        own = registry.register(
            "short",
            path="/a/s3",
            sha256="d" * 64,
            window_id=5,
            metrics={"hybrid": HYBRID.to_dict()},
        )
        registry.set_alias("serving-short", "short", own.version, reason="t", actor="test")
        assert serving_hybrid(own, long) == (HYBRID, own)
        served = current_serving_set(registry)
        assert served is not None and served.hybrid == HYBRID
        assert serving_hybrid(None, None) == (None, None)
