from __future__ import annotations

import random

import pytest
import torch

from lsat.adapters.model.batching import length_batches, right_pad, shuffled_length_batches
from lsat.adapters.model.layer_cache import HiddenStateCache, pad_hidden


@pytest.mark.parametrize(
    ("lengths", "size", "bucketed", "expected"),
    [
        ([3, 1, 2], 2, True, [[1, 2], [0]]),
        ([3, 1, 2], 2, False, [[0, 1], [2]]),
        ([5, 5, 5], 1, True, [[0], [1], [2]]),
        ([], 4, True, []),
    ],
)
def test_length_batches(lengths, size, bucketed, expected) -> None:
    assert length_batches(lengths, size, bucketed=bucketed) == expected


def test_length_batches_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="0"):
        length_batches([1], 0)


@pytest.mark.parametrize("bucketed", [True, False])
def test_shuffled_batches_cover_each_index_once_and_repeat_with_seed(bucketed) -> None:
    lengths = [random.Random(1).randrange(1, 50) for _ in range(101)]
    first = shuffled_length_batches(lengths, 8, random.Random(3), bucketed=bucketed)
    again = shuffled_length_batches(lengths, 8, random.Random(3), bucketed=bucketed)
    assert first == again
    assert sorted(i for b in first for i in b) == list(range(101))


def test_bucketed_batches_are_narrower_than_random_ones() -> None:
    rng = random.Random(0)
    lengths = [rng.randrange(10, 200) for _ in range(256)]

    def padded_tokens(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    bucketed = shuffled_length_batches(lengths, 8, random.Random(0), bucketed=True)
    plain = shuffled_length_batches(lengths, 8, random.Random(0), bucketed=False)
    assert padded_tokens(bucketed) < padded_tokens(plain)


def test_right_pad_rejects_empty_prompt() -> None:
    with pytest.raises(ValueError, match="empty"):
        right_pad([[1], []], 0)


def test_cache_separates_layer_and_precision_and_evicts_lru() -> None:
    cache = HiddenStateCache(max_bytes=3 * 4 * 4)
    cache.put("a", 1, torch.ones(1, 4))
    cache.put("a", 1, torch.full((1, 4), 2.0), "bf16")
    cache.put("b", 1, torch.zeros(1, 4))
    assert cache.get("a", 1) is not None  # refreshes "a"
    cache.put("c", 1, torch.zeros(1, 4))
    assert cache.get("a", 1, "bf16") is None  # oldest evicted
    assert cache.get("a", 1).sum() == 4 and cache.get("a", 2) is None
    assert cache.bytes <= cache.max_bytes


def test_pad_hidden_keeps_rows() -> None:
    hidden, mask = pad_hidden([torch.ones(3, 2), 2 * torch.ones(1, 2)])
    assert hidden[1, 0].tolist() == [2.0, 2.0] and hidden[1, 1:].abs().sum() == 0
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
