"""Registering, reading and listing versions; status changes; evaluations; bad input."""

from __future__ import annotations

import hashlib
from datetime import UTC

import pytest

from lsat.adapters.lifecycle.registry import (
    AdapterKey,
    AdapterVersionInUse,
    AdapterVersionNotFound,
    InvalidRegistryValue,
    RegistryStore,
    SqlRegistryStore,
)


def fake_sha256(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def test_register_numbers_versions_per_kind_and_round_trips(registry: SqlRegistryStore) -> None:
    long1 = registry.register(
        "long",
        path="/art/long-1",
        sha256=fake_sha256("l1"),
        trigger="bootstrap",
        window_id=[1, 2, 3],
        metrics={"val_auc": 0.71},
    )
    short1 = registry.register("short", path="/art/short-1", sha256=fake_sha256("s1"), window_id=4)
    short2 = registry.register(
        "short", path="/art/short-2", sha256=fake_sha256("s2"), window_id="w5"
    )
    merged = registry.register(
        "merged",
        path="/art/merged-1",
        sha256=fake_sha256("m1").upper(),
        trigger="span",
        parents=[long1.key, ("short", 2)],
        metrics={"alpha": 0.3, "per_window": [0.7, 0.72]},
    )
    assert [(v.kind, v.version) for v in (long1, short1, short2, merged)] == [
        ("long", 1),
        ("short", 1),
        ("short", 2),
        ("merged", 1),
    ]
    got = registry.get("merged", 1)
    assert got == merged
    assert got.parents == (AdapterKey("long", 1), AdapterKey("short", 2))
    assert got.metrics == {"alpha": 0.3, "per_window": [0.7, 0.72]}
    assert got.sha256 == fake_sha256("m1")  # stored lowercase
    assert got.status == "candidate" and got.trigger == "span"
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == UTC.utcoffset(None)
    assert registry.get("long", 1).window_ids == (1, 2, 3)
    assert registry.get("short", 2).window_ids == ("w5",)


def test_list_filters_and_orders_newest_first(registry: SqlRegistryStore) -> None:
    for index in range(3):
        registry.register("short", path=f"/s{index}", sha256=fake_sha256(f"s{index}"))
    registry.register("long", path="/l0", sha256=fake_sha256("l0"))
    registry.reject("short", 2, "validation AUC fell")
    assert [str(v.key) for v in registry.list()] == ["long/v1", "short/v3", "short/v2", "short/v1"]
    assert [v.version for v in registry.list(kind="short")] == [3, 2, 1]
    assert [str(v.key) for v in registry.list(status="rejected")] == ["short/v2"]
    assert [v.version for v in registry.list(kind="short", limit=2)] == [3, 2]
    assert registry.latest("short").version == 3  # type: ignore[union-attr]
    assert registry.latest("short", status="rejected").version == 2  # type: ignore[union-attr]
    assert registry.latest("merged") is None


def test_reject_and_archive_record_reason(registry: SqlRegistryStore) -> None:
    registry.register("short", path="/s1", sha256=fake_sha256("s1"))
    rejected = registry.reject("short", 1, "  AUC 0.51 < 0.60 guard  ")
    assert (rejected.status, rejected.status_reason) == ("rejected", "AUC 0.51 < 0.60 guard")
    archived = registry.archive("short", 1)
    assert (archived.status, archived.status_reason) == ("archived", None)
    assert registry.get("short", 1).status == "archived"


def test_serving_version_cannot_be_rejected_but_candidate_alias_does_not_block(
    registry: SqlRegistryStore,
) -> None:
    registry.register("short", path="/s1", sha256=fake_sha256("s1"))
    registry.register("short", path="/s2", sha256=fake_sha256("s2"))
    registry.set_alias("serving-short", "short", 1, reason="first", actor="t")
    registry.set_alias("candidate", "short", 2, reason="trained", actor="t")
    with pytest.raises(AdapterVersionInUse) as caught:
        registry.reject("short", 1, "bad")
    assert caught.value.code == "adapter_version_in_use"
    assert caught.value.key["aliases"] == ("serving-short",)
    assert registry.get("short", 1).status == "candidate"  # nothing changed
    assert registry.reject("short", 2, "guard failed").status == "rejected"


def test_missing_version_names_the_key(registry: SqlRegistryStore) -> None:
    with pytest.raises(AdapterVersionNotFound) as caught:
        registry.get("long", 9)
    assert caught.value.code == "adapter_version_not_found"
    assert caught.value.key == {"kind": "long", "version": 9}
    assert "long/v9" in str(caught.value)


def test_unknown_parent_is_refused_and_nothing_is_written(registry: SqlRegistryStore) -> None:
    with pytest.raises(AdapterVersionNotFound):
        registry.register("merged", path="/m", sha256=fake_sha256("m"), parents=[("long", 1)])
    assert registry.list() == []


GOOD = {"path": "/a", "sha256": "ab" * 32}


@pytest.mark.parametrize(
    ("kind", "overrides", "field"),
    [
        ("huge", {}, "kind"),
        ("short", {"sha256": "xyz"}, "sha256"),
        ("short", {"sha256": "ab" * 31}, "sha256"),
        ("short", {"path": ""}, "path"),
        ("short", {"path": None}, "path"),
        ("short", {"trigger": "Full Retrain!"}, "trigger"),
        ("short", {"status": "serving"}, "status"),
        ("short", {"window_id": [1, ""]}, "window_id"),
        ("short", {"window_id": True}, "window_id"),
        ("short", {"metrics": {"auc": float("nan")}}, "metrics.auc"),
        ("short", {"metrics": {"curve": [0.5, float("inf")]}}, "metrics.curve[1]"),
        ("short", {"metrics": {1: 0.5}}, "metrics"),
        ("short", {"metrics": {"obj": object()}}, "metrics.obj"),
        ("short", {"parents": [("long", 0)]}, "version"),
        ("short", {"parents": [("tiny", 1)]}, "kind"),
        ("short", {"parents": ["long"]}, "parents"),
    ],
)
def test_register_rejects_bad_input_naming_the_field(
    registry: SqlRegistryStore, kind: str, overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidRegistryValue) as caught:
        registry.register(kind, **{**GOOD, **overrides})  # type: ignore[arg-type]
    assert caught.value.code == "invalid_value"
    assert caught.value.key["field"] == field
    assert registry.list() == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda r: r.get("short", 0), "version"),
        (lambda r: r.get("short", True), "version"),
        (lambda r: r.list(limit=0), "limit"),
        (lambda r: r.list(status="serving"), "status"),
        (lambda r: r.reject("short", 1, "   "), "reason"),
        (lambda r: r.record_evaluation("short", 1, 1, auc=1.5, logloss=0.6, n=10), "auc"),
        (lambda r: r.record_evaluation("short", 1, 1, auc=0.5, logloss=-1, n=10), "logloss"),
        (lambda r: r.record_evaluation("short", 1, 1, auc=0.5, logloss=0.6, n=-1), "n"),
    ],
)
def test_other_calls_reject_bad_input(registry: SqlRegistryStore, call, field: str) -> None:  # type: ignore[no-untyped-def]
    registry.register("short", **GOOD)
    with pytest.raises(InvalidRegistryValue) as caught:
        call(registry)
    assert caught.value.key["field"] == field


def test_evaluations_are_recorded_per_window_and_replaced_on_rerecord(
    registry: SqlRegistryStore,
) -> None:
    registry.register("long", path="/l", sha256=fake_sha256("l"))
    registry.register("short", path="/s", sha256=fake_sha256("s"))
    registry.record_evaluation("long", 1, 7, auc=0.70, logloss=0.62, n=500)
    registry.record_evaluation("short", 1, 7, auc=0.66, logloss=0.65, n=500)
    registry.record_evaluation("long", 1, 8, auc=0.69, logloss=None, n=480)
    replaced = registry.record_evaluation("long", 1, 7, auc=0.71, logloss=0.61, n=501)
    assert (replaced.window_id, replaced.auc, replaced.n) == ("7", 0.71, 501)
    long_evals = registry.evaluations(kind="long")
    assert [(e.window_id, e.auc, e.logloss, e.n) for e in long_evals] == [
        ("7", 0.71, 0.61, 501),
        ("8", 0.69, None, 480),
    ]
    assert [e.kind for e in registry.evaluations(window_id=7)] == ["long", "short"]
    with pytest.raises(AdapterVersionNotFound):
        registry.record_evaluation("merged", 1, 7, auc=0.5, logloss=0.7, n=1)


def test_contract_is_enforced() -> None:
    class Incomplete(RegistryStore):
        def get(self, kind: str, version: int):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]
