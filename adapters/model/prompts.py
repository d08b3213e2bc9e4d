"""TALLRec prompts: the instruction, the user's liked/disliked titles, and the target item.

The prompt ends right before the answer, so the next token is scored as " Yes" vs " No"
(see :mod:`lsat.adapters.model.scoring`). Formats (:data:`PROMPT_FORMATS`):

* ``tallrec`` (default): TALLRec's Alpaca-style layout, ending in ``### Response:``.
* ``tallrec_hints``: the same plus the collaborative counts as text before the response
  (the item's and the user's earlier likes out of their ratings; needs annotated samples).
* ``chat`` / ``chat_hints``: the instruction and input as one user turn in the tokenizer's
  chat template (SmolLM2's ``<|im_start|>`` turns), ending where the assistant answers; a
  tokenizer without a template gets the same ChatML layout without a system turn.
* ``tallrec_hints_recent`` / ``chat_hints_recent``: the hints plus a last line counting the
  likes among the recent ratings the prompt lists (the history like-rate, the strongest single
  rate in the stream experiments, which a small model does not count from the title lists).

The item noun ("movie", "product", …) is used throughout the wording.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from lsat.data.types import CollaborativeFeatures, Sample

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "ANSWER_NO",
    "ANSWER_YES",
    "DEFAULT_PROMPT_FORMAT",
    "PROMPT_FORMATS",
    "PromptError",
    "build_prompt",
    "check_prompt_format",
    "hints_text",
    "instruction_text",
    "uses_collaborative",
]

ANSWER_YES = " Yes"
ANSWER_NO = " No"
PROMPT_FORMATS: tuple[str, ...] = (
    "tallrec",
    "tallrec_hints",
    "chat",
    "chat_hints",
    "tallrec_hints_recent",
    "chat_hints_recent",
)
DEFAULT_PROMPT_FORMAT = "tallrec"
_CHAT_FALLBACK = "<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n"


class PromptError(ValueError):
    """A sample cannot be turned into a prompt."""


def instruction_text(item_noun: str = "movie") -> str:
    """The TALLRec instruction for a dataset whose items are called ``item_noun``.

    >>> instruction_text("book")[:60]
    "Given the user's preference and unpreference, identify wheth"
    """
    return (
        "Given the user's preference and unpreference, identify whether the user will like "
        f"the target {item_noun} by answering Yes or No."
    )


def check_prompt_format(prompt_format: str) -> str:
    """``prompt_format`` if it is one of :data:`PROMPT_FORMATS`, else :class:`PromptError`.

    >>> check_prompt_format("chat")
    'chat'
    >>> check_prompt_format("alpaca")
    Traceback (most recent call last):
    ...
    lsat.adapters.model.prompts.PromptError: unknown prompt format 'alpaca'; choose from ...
    """
    if prompt_format not in PROMPT_FORMATS:
        raise PromptError(
            f"unknown prompt format {prompt_format!r}; choose from {', '.join(PROMPT_FORMATS)}"
        )
    return prompt_format


def uses_collaborative(prompt_format: str) -> bool:
    """Whether ``prompt_format`` writes the collaborative counts (needs annotated samples).

    >>> [uses_collaborative(f) for f in ("chat", "tallrec_hints", "chat_hints_recent")]
    [False, True, True]
    """
    return "_hints" in check_prompt_format(prompt_format)


def _count_line(subject: str, likes: int, count: int) -> str:
    if count == 0:
        return f"{subject}: none."
    return f"{subject}: {likes} of {count} liked ({round(100 * likes / count)}%)."


def hints_text(
    features: CollaborativeFeatures,
    item_noun: str = "movie",
    recent_labels: tuple[int, ...] | None = None,
) -> str:
    """The collaborative counts as text (raw counts, as of before the event).

    ``recent_labels`` (the labels of the history the prompt lists) adds a third line.

    >>> from lsat.data.types import CollaborativeFeatures
    >>> print(hints_text(CollaborativeFeatures(70, 120, 0, 0, 0, 0), "book"))
    Earlier ratings of the target book: none.
    Earlier ratings by the user: 70 of 120 liked (58%).
    >>> print(hints_text(CollaborativeFeatures(7, 9, 3, 4, 0, 0), "book", (1, 0, 1)))
    Earlier ratings of the target book: 3 of 4 liked (75%).
    Earlier ratings by the user: 7 of 9 liked (78%).
    The user's recent ratings listed above: 2 of 3 liked (67%).
    """
    item = _count_line(
        f"Earlier ratings of the target {item_noun}", features.item_likes, features.item_count
    )
    user = _count_line("Earlier ratings by the user", features.user_likes, features.user_count)
    lines = [item, user]
    if recent_labels is not None:
        recent = _count_line(
            "The user's recent ratings listed above", sum(recent_labels), len(recent_labels)
        )
        lines.append(recent)
    return "\n".join(lines)


def _chat(body: str, tokenizer: PreTrainedTokenizerBase | None) -> str:
    """``body`` as one user turn awaiting the assistant's answer."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
        )
        return cast(str, text)  # tokenize=False: the rendered text
    return _CHAT_FALLBACK.format(body=body)


def _quoted(item_ids: list[str], titles: Mapping[str, str]) -> str:
    return ", ".join(f'"{titles.get(item_id) or item_id}"' for item_id in item_ids)


def build_prompt(
    sample: Sample,
    titles: Mapping[str, str],
    item_noun: str = "movie",
    prompt_format: str = DEFAULT_PROMPT_FORMAT,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> str:
    """The prompt for ``sample`` in ``prompt_format``; unknown titles fall back to the item id.

    ``tokenizer`` supplies the chat template of the ``chat*`` formats (None: the fallback).

    >>> from lsat.data.types import Sample
    >>> s = Sample("e", "u", "3", 0, 1, ("1", "2"), (1, 0))
    >>> print(build_prompt(s, {"1": "Heat", "3": "Fargo"}))  # doctest: +ELLIPSIS
    ### Instruction:
    Given the user's preference and unpreference, identify whether ... answering Yes or No.
    ### Input:
    User Preference: "Heat"
    User Unpreference: "2"
    Whether the user will like the target movie "Fargo"?
    ### Response:
    >>> print(build_prompt(s, {}, "book", "chat"))  # doctest: +ELLIPSIS
    <|im_start|>user
    Given the user's preference ... target book by answering Yes or No.
    User Preference: "1"
    User Unpreference: "2"
    Whether the user will like the target book "3"?<|im_end|>
    <|im_start|>assistant
    <BLANKLINE>
    """
    check_prompt_format(prompt_format)
    if len(sample.history_item_ids) != len(sample.history_labels):
        raise PromptError(
            f"sample {sample.event_id!r}: {len(sample.history_item_ids)} history items but "
            f"{len(sample.history_labels)} labels"
        )
    pairs = list(zip(sample.history_item_ids, sample.history_labels, strict=True))
    liked = [item_id for item_id, label in pairs if label]
    disliked = [item_id for item_id, label in pairs if not label]
    target = titles.get(sample.item_id) or sample.item_id
    question = (
        f"User Preference: {_quoted(liked, titles)}\n"
        f"User Unpreference: {_quoted(disliked, titles)}\n"
        f'Whether the user will like the target {item_noun} "{target}"?'
    )
    if uses_collaborative(prompt_format):
        if sample.collaborative is None:
            raise PromptError(
                f"sample {sample.event_id!r} carries no collaborative features, which prompt "
                f"format {prompt_format!r} needs (annotate the samples first)"
            )
        recent = sample.history_labels if prompt_format.endswith("_recent") else None
        question += "\n" + hints_text(sample.collaborative, item_noun, recent)
    if prompt_format.startswith("chat"):
        return _chat(f"{instruction_text(item_noun)}\n{question}", tokenizer)
    return f"### Instruction:\n{instruction_text(item_noun)}\n### Input:\n{question}\n### Response:"
