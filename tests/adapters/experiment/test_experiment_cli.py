"""``lsat experiment`` argument handling (no model: ``--plan`` and configuration errors)."""

from __future__ import annotations

import argparse

import pytest

from lsat.adapters.experiment import cli
from lsat.adapters.model import precision
from lsat.adapters.model.precision import native_bf16
from lsat.core.settings import Settings


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lsat")
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["experiment", *argv])


def test_flags_map_to_the_config() -> None:
    args = _parse(
        "--periods", "20", "--samples-per-period", "300", "--strategies", "short,lsat-en",
        "--lora-layers", "8", "--no-bf16", "--epochs", "2", "--alpha-grid", "0,0.5,1",
        "--max-train-samples", "1000", "--split", "time", "--long-periods", "5",
    )  # fmt: skip
    config = cli.config_from_args(args, Settings(base_model="some/model"))
    assert (config.periods, config.samples_per_period, config.m) == (20, 300, 5)
    assert config.strategies == ("short", "lsat-en")
    assert config.alpha_grid == (0.0, 0.5, 1.0) and config.merge_grid == (0.25, 0.5, 0.75)
    assert config.bf16 is False and config.epochs == 2 and config.split == "time"
    assert config.max_train_samples == 1000 and config.base_model == "some/model"
    train = config.train_config(num_layers=30)
    assert train.layers == tuple(range(22, 30)) and train.epochs == 2 and not train.bf16_autocast
    assert (train.r, train.lora_alpha, train.lora_dropout, train.lr) == (8, 16, 0.05, 1e-3)


def test_prompt_and_hybrid_flags_map_to_the_config() -> None:
    args = _parse(
        "--prompt-format", "tallrec_hints", "--item-noun", "product", "--hybrid-periods", "2",
        "--strategies", "hybrid,rate-stack,short-warm",
    )  # fmt: skip
    config = cli.config_from_args(args, Settings())
    assert (config.prompt_format, config.item_noun, config.hybrid_periods) == (
        "tallrec_hints",
        "product",
        2,
    )
    assert config.strategies == ("short-warm", "hybrid", "rate-stack")
    defaults = cli.config_from_args(_parse(), Settings())
    assert (defaults.prompt_format, defaults.item_noun) == ("tallrec", None)


def test_plan_shows_the_warm_started_short_adapter(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("--periods", "4", "--strategies", "short-warm,hybrid", "--plan")
    assert args.func(args, Settings()) == 0
    err = capsys.readouterr().err
    assert "period 1: short (1)" in err
    assert "period 2: short (2), long (1-2), short_warm (2, from long)" in err


def test_defaults_are_a_small_smoke_run() -> None:
    config = cli.config_from_args(_parse(), Settings())
    assert config.dataset == "ml-100k" and config.periods * config.samples_per_period <= 400
    assert config.m == config.periods // 2
    assert config.bf16 is native_bf16("cpu")  # by capability: emulated bf16 is slower than fp32


@pytest.mark.parametrize(
    ("flag", "native", "expected"),
    [(None, True, True), (None, False, False), ("--bf16", False, True), ("--no-bf16", True, False)],
)
def test_bf16_follows_the_device_unless_a_flag_says(
    monkeypatch: pytest.MonkeyPatch, flag: str | None, native: bool, expected: bool
) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": native)
    config = cli.config_from_args(_parse(*([flag] if flag else [])), Settings())
    assert config.bf16 is expected


def test_plan_prints_which_adapters_train_when(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("--periods", "6", "--strategies", "lsat-en,static", "--plan")
    assert args.func(args, Settings()) == 0
    err = capsys.readouterr().err
    assert "period 1: static (1)" in err
    assert "period 3: short (3), long (1-3)" in err
    assert "period 5: short (5)" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("--strategies", "short,lsta-en"), "'lsta-en'"),
        (("--periods", "1"), "periods 1"),
        (("--periods", "4", "--long-periods", "4"), "long_periods 4"),
        (("--split", "count", "--samples-per-period", "5"), "samples_per_period 5"),
        (("--merge-grid", "0.5,1.5"), "merge_grid"),
        (("--hybrid-periods", "-1"), "hybrid_periods -1"),
    ],
)
def test_bad_configuration_exits_2_naming_the_value(
    argv: tuple[str, ...], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(*argv, "--plan")
    assert args.func(args, Settings()) == 2
    assert needle in capsys.readouterr().err.replace("\n", " ")


def test_bad_dataset_exits_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("--dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    args.base_model = None
    # the dataset is checked before the (slow) base model is loaded
    assert args.func(args, Settings(base_model="tiny-llama-not-loaded")) == 2
    assert "nowhere" in capsys.readouterr().err
