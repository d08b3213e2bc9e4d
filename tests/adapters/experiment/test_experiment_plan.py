"""Per-period bookkeeping of the experiment: which periods train which adapters (no model)."""

from __future__ import annotations

import pytest

from lsat.adapters.experiment.strategies import (
    STRATEGIES,
    ExperimentError,
    evaluated_periods,
    parse_strategies,
    plan_updates,
    roles_needed,
    second_half_periods,
)


def _plan(t: int, n: int, m: int, strategies: tuple[str, ...] | list[str]) -> list[tuple]:
    return [(j.role, j.train_periods, j.continues) for j in plan_updates(t, n, m, strategies)]


@pytest.mark.parametrize(
    ("t", "n", "m", "strategies", "expected"),
    [
        # period 1: everything that exists is a fresh LoRA on period 1
        (
            1,
            4,
            2,
            STRATEGIES,
            [
                ("static", (1,), False),
                ("short", (1,), False),
                ("full", (1,), False),
                ("finetune", (1,), True),
            ],
        ),
        # period m: the long adapter is trained on 1..m, once
        (
            2,
            4,
            2,
            STRATEGIES,
            [
                ("short", (2,), False),
                ("full", (1, 2), False),
                ("finetune", (2,), True),
                ("long", (1, 2), False),
                ("short_warm", (2,), False),
            ],
        ),
        # after m: long is frozen, static too; only short/full/finetune train
        (
            3,
            4,
            2,
            STRATEGIES,
            [
                ("short", (3,), False),
                ("full", (1, 2, 3), False),
                ("finetune", (3,), True),
                ("short_warm", (3,), False),
            ],
        ),
        # lsat-en alone needs nothing before m, then long + short
        (1, 20, 10, ["lsat-en"], []),
        (9, 20, 10, ["lsat-en"], []),
        (10, 20, 10, ["lsat-en"], [("short", (10,), False), ("long", tuple(range(1, 11)), False)]),
        (11, 20, 10, ["lsat-en"], [("short", (11,), False)]),
        # static trains once; the baselines never need an adapter
        (1, 3, 1, ["static"], [("static", (1,), False)]),
        (2, 3, 1, ["static"], []),
        (1, 3, 1, ["mf", "user-rate"], []),
        # short-warm: nothing before m; at m the long adapter first, then short_warm from it
        (1, 4, 2, ["short-warm"], []),
        (2, 4, 2, ["short-warm"], [("long", (1, 2), False), ("short_warm", (2,), False)]),
        (3, 4, 2, ["short-warm"], [("short_warm", (3,), False)]),
        # the hybrid needs the short adapter from the start, the long one from m on
        (1, 4, 2, ["hybrid"], [("short", (1,), False)]),
        (2, 4, 2, ["hybrid"], [("short", (2,), False), ("long", (1, 2), False)]),
        (1, 4, 2, ["rate-stack"], []),
        # long with m = 1 is trained in period 1 alongside short
        (1, 3, 1, ["long", "short"], [("short", (1,), False), ("long", (1,), False)]),
    ],
)
def test_plan_updates_table(t: int, n: int, m: int, strategies, expected) -> None:
    assert _plan(t, n, m, strategies) == expected


@pytest.mark.parametrize(
    ("t", "expected_unique"),
    [(1, 1), (2, 4), (3, 4)],  # 1: all share; 2: full == long on periods 1..2; + short_warm
)
def test_shared_jobs_are_counted_once(t: int, expected_unique: int) -> None:
    jobs = plan_updates(t, 4, 2, STRATEGIES)
    assert len({job.share_key for job in jobs}) == expected_unique


def test_adapter_names_are_unique_per_period_and_role() -> None:
    names = [j.adapter_name for t in range(1, 20) for j in plan_updates(t, 20, 10, STRATEGIES)]
    assert len(names) == len(set(names))
    assert "p10_long" in names and "p01_static" in names


@pytest.mark.parametrize(
    ("strategies", "t", "m", "expected"),
    [
        (["long"], 1, 2, set()),
        (["long"], 2, 2, {"long"}),
        (["lsat-ta-ab", "short"], 1, 2, {"short"}),
        (["lsat-ta-delta"], 5, 2, {"long", "short"}),
        (["rate-sum"], 5, 2, set()),
    ],
)
def test_roles_needed(strategies: list[str], t: int, m: int, expected: set[str]) -> None:
    assert roles_needed(strategies, t, m) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short", ("short",)),
        ("mf,short , static", ("static", "short", "mf")),
        ("all", STRATEGIES),
        (["lsat-en", "lsat-en"], ("lsat-en",)),
    ],
)
def test_parse_strategies(text, expected) -> None:
    assert parse_strategies(text) == expected


@pytest.mark.parametrize("text", ["", "shrot", "short,,bogus", " , "])
def test_parse_strategies_rejects_bad_names(text: str) -> None:
    with pytest.raises(ExperimentError) as info:
        parse_strategies(text)
    bad = [n.strip() for n in text.split(",") if n.strip() and n.strip() not in STRATEGIES]
    if bad:
        assert repr(bad[0]) in str(info.value)


@pytest.mark.parametrize(
    ("t", "n", "m"),
    [(0, 4, 2), (4, 4, 2), (1, 1, 1), (1, 4, 0), (1, 4, 4)],
)
def test_plan_rejects_bad_periods(t: int, n: int, m: int) -> None:
    with pytest.raises(ExperimentError):
        plan_updates(t, n, m, STRATEGIES)


@pytest.mark.parametrize(
    ("n", "tested", "half"),
    [(2, [2], [2]), (4, [2, 3, 4], [3, 4]), (5, [2, 3, 4, 5], [4, 5]), (20, None, None)],
)
def test_periods_tested_and_averaged(n: int, tested, half) -> None:
    assert evaluated_periods(n) == (tested or list(range(2, n + 1)))
    assert second_half_periods(n) == (half or list(range(11, 21)))
