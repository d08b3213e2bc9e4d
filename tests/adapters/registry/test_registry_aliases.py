"""Alias pointers: set, resolve, audited history, rollback (repeatable), guards."""

from __future__ import annotations

import pytest

from lsat.adapters.lifecycle.registry import (
    AdapterKey,
    AliasNotFound,
    AliasUnchanged,
    InvalidRegistryValue,
    NoPreviousTarget,
    SqlRegistryStore,
    VersionRejected,
)
from lsat.adapters.lifecycle.registry.entities import served_stack


def register_shorts(registry: SqlRegistryStore, count: int) -> None:
    for index in range(1, count + 1):
        registry.register("short", path=f"/s{index}", sha256=f"{index:064x}")


def test_set_alias_resolves_and_logs_previous_target(registry: SqlRegistryStore) -> None:
    register_shorts(registry, 2)
    assert registry.resolve("serving-short") is None
    first = registry.set_alias("serving-short", "short", 1, reason="bootstrap", actor="trainer")
    second = registry.set_alias("serving-short", "short", 2, reason="AUC +0.02", actor="trainer")
    assert (first.previous, first.target) == (None, AdapterKey("short", 1))
    assert (second.previous, second.target) == (AdapterKey("short", 1), AdapterKey("short", 2))
    assert registry.resolve("serving-short") == registry.get("short", 2)
    history = registry.alias_history("serving-short")
    assert [(c.action, str(c.target), c.reason, c.actor) for c in history] == [
        ("set", "short/v1", "bootstrap", "trainer"),
        ("set", "short/v2", "AUC +0.02", "trainer"),
    ]
    assert history[0].changed_at <= history[1].changed_at
    assert registry.aliases() == {"serving-short": AdapterKey("short", 2)}


def test_rollback_restores_previous_and_twice_goes_further_back(
    registry: SqlRegistryStore,
) -> None:
    register_shorts(registry, 3)
    for version in (1, 2, 3):
        registry.set_alias("serving-short", "short", version, reason=f"v{version}", actor="t")
    restored = registry.rollback("serving-short", reason="v3 regressed", actor="oncall")
    assert restored.version == 2
    assert registry.resolve("serving-short").version == 2  # type: ignore[union-attr]
    assert registry.rollback("serving-short", reason="v2 too", actor="oncall").version == 1
    with pytest.raises(NoPreviousTarget) as caught:
        registry.rollback("serving-short", reason="again", actor="oncall")
    assert caught.value.code == "no_previous_target"
    assert caught.value.key == {"alias": "serving-short"}
    history = registry.alias_history("serving-short")
    assert [(c.action, str(c.target), str(c.previous)) for c in history] == [
        ("set", "short/v1", "None"),
        ("set", "short/v2", "short/v1"),
        ("set", "short/v3", "short/v2"),
        ("rollback", "short/v2", "short/v3"),
        ("rollback", "short/v1", "short/v2"),
    ]
    assert history[-1].actor == "oncall" and history[-1].reason == "v2 too"


def test_set_after_rollback_then_rollback_returns_to_the_rolled_back_to_version(
    registry: SqlRegistryStore,
) -> None:
    register_shorts(registry, 4)
    for version in (1, 2, 3):
        registry.set_alias("serving-short", "short", version, reason="r", actor="t")
    registry.rollback("serving-short", reason="bad v3", actor="t")  # serving v2
    registry.set_alias("serving-short", "short", 4, reason="new", actor="t")
    assert registry.rollback("serving-short", reason="bad v4", actor="t").version == 2
    assert registry.rollback("serving-short", reason="bad v2", actor="t").version == 1


def test_rollback_is_per_alias(registry: SqlRegistryStore) -> None:
    register_shorts(registry, 2)
    registry.register("long", path="/l1", sha256="f" * 64)
    registry.register("long", path="/l2", sha256="e" * 64)
    registry.set_alias("serving-short", "short", 1, reason="r", actor="t")
    registry.set_alias("serving-long", "long", 1, reason="r", actor="t")
    registry.set_alias("serving-short", "short", 2, reason="r", actor="t")
    registry.set_alias("serving-long", "long", 2, reason="r", actor="t")
    assert str(registry.rollback("serving-long", reason="r", actor="t").key) == "long/v1"
    assert str(registry.resolve("serving-short").key) == "short/v2"  # type: ignore[union-attr]


def test_rejected_version_is_never_served(registry: SqlRegistryStore) -> None:
    register_shorts(registry, 3)
    registry.reject("short", 3, "guard: AUC below long-term")
    with pytest.raises(VersionRejected) as caught:
        registry.set_alias("serving-short", "short", 3, reason="r", actor="t")
    assert caught.value.key["reason"] == "guard: AUC below long-term"
    registry.set_alias("serving-short", "short", 1, reason="r", actor="t")
    registry.set_alias("serving-short", "short", 2, reason="r", actor="t")
    registry.set_alias("serving-short", "short", 1, reason="back", actor="t")
    registry.reject("short", 2, "found bad later")
    with pytest.raises(VersionRejected):
        registry.rollback("serving-short", reason="r", actor="t")
    assert registry.resolve("serving-short").version == 1  # type: ignore[union-attr]
    assert len(registry.alias_history("serving-short")) == 3


def test_setting_the_same_target_is_an_error_and_logs_nothing(registry: SqlRegistryStore) -> None:
    register_shorts(registry, 1)
    registry.set_alias("candidate", "short", 1, reason="r", actor="t")
    with pytest.raises(AliasUnchanged) as caught:
        registry.set_alias("candidate", "short", 1, reason="again", actor="t")
    assert caught.value.key == {"alias": "candidate", "kind": "short", "version": 1}
    assert len(registry.alias_history("candidate")) == 1


def test_unknown_alias_errors_name_it(registry: SqlRegistryStore) -> None:
    with pytest.raises(AliasNotFound) as caught:
        registry.rollback("serving-merged", reason="r", actor="t")
    assert (caught.value.code, caught.value.key) == ("alias_not_found", {"alias": "serving-merged"})
    with pytest.raises(AliasNotFound):
        registry.alias_history("serving-merged")


@pytest.mark.parametrize(
    ("alias", "kind", "reason", "actor", "field"),
    [
        ("", "short", "r", "t", "alias"),
        ("has space", "short", "r", "t", "alias"),
        ("x" * 65, "short", "r", "t", "alias"),
        ("serving-long", "short", "r", "t", "alias"),
        ("serving-short", "short", "", "t", "reason"),
        ("serving-short", "short", "r", " ", "actor"),
        ("serving-short", "medium", "r", "t", "kind"),
    ],
)
def test_set_alias_rejects_bad_input(
    registry: SqlRegistryStore, alias: str, kind: str, reason: str, actor: str, field: str
) -> None:
    register_shorts(registry, 1)
    with pytest.raises(InvalidRegistryValue) as caught:
        registry.set_alias(alias, kind, 1, reason=reason, actor=actor)
    assert caught.value.key["field"] == field
    assert registry.aliases() == {}


def test_any_alias_name_may_point_at_any_kind(registry: SqlRegistryStore) -> None:
    register_shorts(registry, 1)
    registry.register("merged", path="/m", sha256="d" * 64)
    registry.set_alias("canary.eu-1", "merged", 1, reason="r", actor="t")
    registry.set_alias("serving-experimental", "short", 1, reason="r", actor="t")
    assert set(registry.aliases()) == {"canary.eu-1", "serving-experimental"}


V = [AdapterKey("short", n) for n in range(6)]


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ([], []),
        ([("set", V[1])], [V[1]]),
        ([("set", V[1]), ("set", V[2]), ("rollback", V[1])], [V[1]]),
        (
            [("set", V[1]), ("set", V[2]), ("set", V[3]), ("rollback", V[2]), ("rollback", V[1])],
            [V[1]],
        ),
        ([("set", V[1]), ("set", V[2]), ("rollback", V[1]), ("set", V[4])], [V[1], V[4]]),
        ([("set", V[1]), ("set", V[1])], [V[1], V[1]]),
    ],
)
def test_served_stack_replays_the_log(
    log: list[tuple[str, AdapterKey]], expected: list[AdapterKey]
) -> None:
    assert served_stack(log) == expected


@pytest.mark.parametrize(
    "log",
    [
        [("rollback", V[1])],
        [("set", V[1]), ("rollback", V[1])],
        [("set", V[1]), ("set", V[2]), ("rollback", V[3])],
    ],
)
def test_served_stack_refuses_an_inconsistent_log(log: list[tuple[str, AdapterKey]]) -> None:
    with pytest.raises(ValueError, match="inconsistent alias log"):
        served_stack(log)
