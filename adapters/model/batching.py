"""Tokenise prompts, group them into length buckets and right-pad each batch.

Sorting by length and padding per batch means a batch of short prompts does not pay for the
longest prompt in the whole set.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

__all__ = ["encode_prompts", "length_batches", "pad_id_of", "right_pad", "shuffled_length_batches"]


def pad_id_of(tokenizer: PreTrainedTokenizerBase) -> int:
    """A token id to pad with (never attended: batches are right-padded)."""
    for candidate in (
        getattr(tokenizer, "pad_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
    ):
        if candidate is not None:
            return int(candidate)
    return 0


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt, without special tokens added."""
    if not prompts:
        return []
    return [list(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]


def length_batches(
    lengths: Sequence[int], batch_size: int, *, bucketed: bool = True
) -> list[list[int]]:
    """Index batches; with ``bucketed`` the indices are sorted by length first (stable).

    >>> length_batches([5, 1, 4, 2], 2)
    [[1, 3], [2, 0]]
    >>> length_batches([5, 1, 4, 2], 3, bucketed=False)
    [[0, 1, 2], [3]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = (
        sorted(range(len(lengths)), key=lambda i: lengths[i])
        if bucketed
        else list(range(len(lengths)))
    )
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def shuffled_length_batches(
    lengths: Sequence[int],
    batch_size: int,
    rng: random.Random,
    *,
    bucketed: bool = True,
    pool_batches: int = 32,
) -> list[list[int]]:
    """Training batches: shuffle, sort each pool of ``pool_batches`` batches by length, shuffle.

    >>> sorted(i for b in shuffled_length_batches([3, 1, 2, 5, 4], 2, random.Random(0)) for i in b)
    [0, 1, 2, 3, 4]
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not bucketed:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    pool = batch_size * pool_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), right-padded to the longest sequence in the batch.

    >>> ids, mask = right_pad([[7, 8, 9], [5]], 0)
    >>> ids.tolist(), mask.tolist()
    ([[7, 8, 9], [5, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """
    if any(len(s) == 0 for s in sequences):
        raise ValueError("cannot score an empty prompt")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask
