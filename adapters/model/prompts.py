"""TALLRec prompts: the instruction, the user's liked/disliked titles, and the target item.

The prompt ends right before the answer, so the next token is scored as " Yes" vs " No"
(see :mod:`lsat.adapters.model.scoring`). The layout follows TALLRec's Alpaca-style instruction
format.
"""

from __future__ import annotations

from collections.abc import Mapping

from lsat.data.types import Sample

__all__ = ["ANSWER_NO", "ANSWER_YES", "PromptError", "build_prompt", "instruction_text"]

ANSWER_YES = " Yes"
ANSWER_NO = " No"


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


def _quoted(item_ids: list[str], titles: Mapping[str, str]) -> str:
    return ", ".join(f'"{titles.get(item_id) or item_id}"' for item_id in item_ids)


def build_prompt(sample: Sample, titles: Mapping[str, str], item_noun: str = "movie") -> str:
    """The TALLRec prompt for ``sample``; unknown titles fall back to the item id.

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
    """
    if len(sample.history_item_ids) != len(sample.history_labels):
        raise PromptError(
            f"sample {sample.event_id!r}: {len(sample.history_item_ids)} history items but "
            f"{len(sample.history_labels)} labels"
        )
    pairs = list(zip(sample.history_item_ids, sample.history_labels, strict=True))
    liked = [item_id for item_id, label in pairs if label]
    disliked = [item_id for item_id, label in pairs if not label]
    target = titles.get(sample.item_id) or sample.item_id
    return (
        f"### Instruction:\n{instruction_text(item_noun)}\n"
        f"### Input:\nUser Preference: {_quoted(liked, titles)}\n"
        f"User Unpreference: {_quoted(disliked, titles)}\n"
        f'Whether the user will like the target {item_noun} "{target}"?\n'
        "### Response:"
    )
