"""The prompt an adapter was trained with, as its folder's ``metadata.json`` records it.

Training writes ``prompt_format`` and ``item_noun`` into the metadata; the trainer's scoring and
the scorer read them back so every adapter is always prompted the way it learned. Adapters
written before these keys existed were trained with TALLRec's prompt about movies.

>>> prompt_of({"prompt_format": "chat_hints", "item_noun": "book"})
AdapterPrompt(prompt_format='chat_hints', item_noun='book')
>>> prompt_of({})
AdapterPrompt(prompt_format='tallrec', item_noun='movie')
>>> AdapterPrompt("chat", "product").metadata()
{'prompt_format': 'chat', 'item_noun': 'product'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lsat.adapters.model.prompts import DEFAULT_PROMPT_FORMAT, PromptError, check_prompt_format

__all__ = ["DEFAULT_ITEM_NOUN", "AdapterPrompt", "prompt_of"]

DEFAULT_ITEM_NOUN = "movie"


@dataclass(frozen=True, slots=True)
class AdapterPrompt:
    """A prompt format of :mod:`lsat.adapters.model.prompts` and the item noun it says."""

    prompt_format: str = DEFAULT_PROMPT_FORMAT
    item_noun: str = DEFAULT_ITEM_NOUN

    def __post_init__(self) -> None:
        check_prompt_format(self.prompt_format)
        if not isinstance(self.item_noun, str) or not self.item_noun.strip():
            raise PromptError(f"item_noun={self.item_noun!r}; expected a non-empty word")

    def metadata(self) -> dict[str, str]:
        """The metadata keys that record this prompt."""
        return {"prompt_format": self.prompt_format, "item_noun": self.item_noun}


def prompt_of(metadata: Mapping[str, Any]) -> AdapterPrompt:
    """The prompt recorded in an adapter's metadata (TALLRec about movies when absent);
    :class:`PromptError` when a recorded value is not a known format or noun."""
    return AdapterPrompt(
        str(metadata.get("prompt_format", DEFAULT_PROMPT_FORMAT)),
        str(metadata.get("item_noun", DEFAULT_ITEM_NOUN)),
    )
