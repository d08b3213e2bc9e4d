from __future__ import annotations

import pytest

from lsat.adapters.model.prompts import (
    PROMPT_FORMATS,
    PromptError,
    build_prompt,
    check_prompt_format,
    instruction_text,
)
from lsat.adapters.model.tiny_tokenizer import build_tiny_tokenizer
from lsat.data.types import CollaborativeFeatures, Sample

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


FEATURES = CollaborativeFeatures(3, 10, 5, 7, 50, 100)


def annotated(noun_target: str = "9") -> Sample:
    return Sample("e1", "u1", noun_target, 0, 1, ("1", "2"), (1, 0), FEATURES)


def test_default_format_is_byte_identical_to_the_plain_tallrec_prompt() -> None:
    s = annotated()
    assert (
        build_prompt(s, TITLES)
        == build_prompt(s, TITLES, "movie", "tallrec")
        == (
            "### Instruction:\n"
            "Given the user's preference and unpreference, identify whether the user will like "
            "the target movie by answering Yes or No.\n"
            "### Input:\n"
            'User Preference: "Heat"\n'
            'User Unpreference: "Fargo"\n'
            'Whether the user will like the target movie "Toy Story"?\n'
            "### Response:"
        )
    )


def test_hints_go_before_the_response_with_raw_counts_and_the_item_noun() -> None:
    prompt = build_prompt(annotated(), TITLES, "product", "tallrec_hints")
    assert prompt.endswith(
        'Whether the user will like the target product "Toy Story"?\n'
        "Earlier ratings of the target product: 5 of 7 liked (71%).\n"
        "Earlier ratings by the user: 3 of 10 liked (30%).\n"
        "### Response:"
    )
    assert "movie" not in prompt


@pytest.mark.parametrize("prompt_format", ["tallrec_hints_recent", "chat_hints_recent"])
def test_recent_hints_add_the_like_count_of_the_listed_history_last(prompt_format: str) -> None:
    prompt = build_prompt(annotated(), TITLES, "movie", prompt_format)
    assert (
        "Earlier ratings by the user: 3 of 10 liked (30%).\n"
        "The user's recent ratings listed above: 1 of 2 liked (50%)."
    ) in prompt
    plain = build_prompt(annotated(), TITLES, "movie", prompt_format.removesuffix("_recent"))
    assert "recent ratings" not in plain


def test_recent_hints_on_an_empty_history_say_none() -> None:
    s = annotated()
    empty = Sample(s.event_id, s.user_id, s.item_id, 0, 1, (), (), s.collaborative)
    prompt = build_prompt(empty, TITLES, "movie", "tallrec_hints_recent")
    assert "The user's recent ratings listed above: none.\n### Response:" in prompt


@pytest.mark.parametrize(
    "prompt_format", ["tallrec_hints", "chat_hints", "tallrec_hints_recent", "chat_hints_recent"]
)
def test_hints_need_annotated_samples(prompt_format: str) -> None:
    with pytest.raises(PromptError, match=r"e1.*no collaborative features"):
        build_prompt(sample(("1",), (1,)), TITLES, "movie", prompt_format)


def test_chat_uses_the_tokenizer_template_else_the_chatml_fallback() -> None:
    s = annotated()
    fallback = build_prompt(s, TITLES, "movie", "chat", build_tiny_tokenizer())
    assert fallback.startswith("<|im_start|>user\nGiven the user's preference")
    assert fallback.endswith('"Toy Story"?<|im_end|>\n<|im_start|>assistant\n')
    assert "### " not in fallback

    class Templated:
        chat_template = "custom"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert (tokenize, add_generation_prompt) == (False, True)
            return f"[{messages[0]['role']}] {messages[0]['content']} [assistant]"

    templated = build_prompt(s, TITLES, "movie", "chat_hints", Templated())
    assert templated.startswith("[user] Given the user's preference")
    assert templated.endswith("3 of 10 liked (30%). [assistant]")


def test_every_format_is_accepted_and_an_unknown_one_is_named() -> None:
    for prompt_format in PROMPT_FORMATS:
        assert build_prompt(annotated(), TITLES, "movie", prompt_format)
    with pytest.raises(PromptError, match="'alpaca'"):
        check_prompt_format("alpaca")
    with pytest.raises(PromptError, match="'alpaca'"):
        build_prompt(annotated(), TITLES, "movie", "alpaca")
