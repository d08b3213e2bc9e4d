"""The quality options travel from ``lsat up`` to its trainer children as flags and come back
equal; ``lsat up`` says the dataset's item noun unless told otherwise."""

from __future__ import annotations

import pytest

from lsat.adapters.trainer.options import QualityOptions
from lsat.apps.cli import build_parser
from lsat.apps.quality_flags import options_from_args, quality_argv


@pytest.mark.parametrize(
    "options",
    [
        QualityOptions(),
        QualityOptions("chat_hints", "product", "long", 2, True, 3),
        QualityOptions(prompt_format="tallrec_hints", bf16=False),
    ],
)
def test_trainer_flags_round_trip(options: QualityOptions) -> None:
    for head in (["trainer"], ["trainer", "--bootstrap-long"]):
        args = build_parser().parse_args([*head, *quality_argv(options), "--windows", "1", "2"])
        assert options_from_args(args) == options


def test_up_leaves_the_item_noun_to_the_dataset_unless_given() -> None:
    assert build_parser().parse_args(["up"]).item_noun is None
    assert build_parser().parse_args(["up", "--item-noun", "book"]).item_noun == "book"


def test_a_bad_option_names_the_value() -> None:
    with pytest.raises(ValueError, match="short_init='warm'"):
        QualityOptions(short_init="warm")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["trainer", "--prompt-format", "alpaca"])
