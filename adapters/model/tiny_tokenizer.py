"""An offline byte-level BPE tokenizer for the tiny test model, trained in milliseconds.

Any text encodes (bytes fall back to single-byte tokens); " Yes" and " No" are single tokens,
as they are in SmolLM2's tokenizer, so the answer-token logic is exercised for real.
"""

from __future__ import annotations

from functools import lru_cache

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["build_tiny_tokenizer"]

_CORPUS = (
    "Given the user's preference and unpreference, identify whether the user will like the "
    "target movie by answering Yes or No. ### Instruction: ### Input: ### Response: "
    'User Preference: "Toy Story", "Heat", "Fargo" User Unpreference: "Jaws" '
    'Whether the user will like the target movie "Star Wars"? Yes No Yes No Yes No'
)


@lru_cache(maxsize=1)
def _trained_json() -> str:
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|pad|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([_CORPUS] * 20, trainer=trainer)
    return tokenizer.to_str()


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A small deterministic byte-level BPE tokenizer (vocabulary of a few hundred tokens).

    >>> tok = build_tiny_tokenizer()
    >>> [len(tok.encode(text, add_special_tokens=False)) for text in (" Yes", " No")]
    [1, 1]
    """
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_json()),
        pad_token="<|pad|>",
        eos_token="<|endoftext|>",
    )
