from __future__ import annotations

import pytest

from lsat.adapters.model.prompts import PromptError, build_prompt, instruction_text
from lsat.data.types import Sample

TITLES = {"1": "Heat", "2": "Fargo", "3": "Jaws", "9": "Toy Story"}


def sample(history: tuple[str, ...], labels: tuple[int, ...], target: str = "9") -> Sample:
    return Sample("e1", "u1", target, 0, 1, history, labels)


@pytest.mark.parametrize(
    ("history", "labels", "target", "noun", "expected_input"),
    [
        (
            ("1", "2", "3"),
            (1, 1, 0),
            "9",
            "movie",
            'User Preference: "Heat", "Fargo"\nUser Unpreference: "Jaws"\n'
            'Whether the user will like the target movie "Toy Story"?',
        ),
        (
            ("1",),
            (0,),
            "9",
            "book",
            'User Preference: \nUser Unpreference: "Heat"\n'
            'Whether the user will like the target book "Toy Story"?',
        ),
        (
            ("77", "1"),
            (1, 1),
            "88",
            "movie",
            'User Preference: "77", "Heat"\nUser Unpreference: \n'
            'Whether the user will like the target movie "88"?',
        ),
        (
            (),
            (),
            "2",
            "movie",
            "User Preference: \nUser Unpreference: \n"
            'Whether the user will like the target movie "Fargo"?',
        ),
    ],
)
def test_prompt_layout(history, labels, target, noun, expected_input) -> None:
    prompt = build_prompt(sample(history, labels, target), TITLES, noun)
    assert prompt == (
        f"### Instruction:\n{instruction_text(noun)}\n### Input:\n{expected_input}\n### Response:"
    )


def test_instruction_is_tallrec_wording() -> None:
    assert instruction_text("movie") == (
        "Given the user's preference and unpreference, identify whether the user will like the "
        "target movie by answering Yes or No."
    )


def test_history_order_is_kept() -> None:
    prompt = build_prompt(sample(("3", "2", "1"), (1, 1, 1)), TITLES)
    assert 'User Preference: "Jaws", "Fargo", "Heat"' in prompt


def test_live_titles_are_read_at_call_time() -> None:
    titles = dict(TITLES)
    cold = sample(("1",), (1,), target="500")
    assert '"500"?' in build_prompt(cold, titles)
    titles["500"] = "Cold Item"
    assert '"Cold Item"?' in build_prompt(cold, titles)


def test_mismatched_history_is_rejected_with_event_id() -> None:
    with pytest.raises(PromptError, match="e1"):
        build_prompt(sample(("1", "2"), (1,)), TITLES)
