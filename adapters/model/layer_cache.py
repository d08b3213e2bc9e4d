"""A memory-bounded cache of hidden states entering the first adapted layer, per prompt.

When LoRA touches only the upper layers, everything below them is frozen: the hidden states
entering the first adapted layer depend only on the prompt. We compute them once (no grad)
and reuse them across epochs, evaluations and adapters. Entries are keyed by
(prompt text, layer, precision of the lower layers) and evicted least-recently-used
beyond ``max_bytes``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

__all__ = ["HiddenStateCache", "pad_hidden"]


class HiddenStateCache:
    """LRU map (prompt, layer, precision) -> (seq, hidden) tensor, bounded by ``max_bytes``.

    >>> cache = HiddenStateCache(max_bytes=64)
    >>> cache.put("p", 2, torch.zeros(2, 4))
    >>> cache.get("p", 2).shape, cache.get("p", 3)
    (torch.Size([2, 4]), None)
    >>> cache.put("q", 2, torch.zeros(4, 4)); cache.get("p", 2) is None, len(cache)
    (True, 1)
    """

    def __init__(self, max_bytes: int = 2 * 1024**3, dtype: torch.dtype = torch.float32) -> None:
        self.max_bytes = max_bytes
        self.dtype = dtype
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, int, str], torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, prompt: str, layer: int, precision: str = "fp32") -> torch.Tensor | None:
        """The cached tensor, or ``None``."""
        key = (prompt, layer, precision)
        tensor = self._entries.get(key)
        if tensor is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return tensor

    def put(self, prompt: str, layer: int, hidden: torch.Tensor, precision: str = "fp32") -> None:
        """Store a detached copy in the cache dtype; evict the oldest entries beyond the budget."""
        key = (prompt, layer, precision)
        stored = hidden.detach().to(self.dtype).contiguous().clone()
        size = stored.numel() * stored.element_size()
        if size > self.max_bytes:
            return
        if key in self._entries:
            old = self._entries.pop(key)
            self.bytes -= old.numel() * old.element_size()
        self._entries[key] = stored
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.numel() * evicted.element_size()

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self.bytes = 0


def pad_hidden(
    states: Sequence[torch.Tensor], dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (seq_i, hidden) tensors into (batch, seq, hidden) plus the attention mask.

    >>> h, m = pad_hidden([torch.ones(2, 3), torch.ones(1, 3)])
    >>> h.shape, m.tolist()
    (torch.Size([2, 2, 3]), [[1, 1], [1, 0]])
    """
    width = max(s.shape[0] for s in states)
    device = states[0].device
    hidden = torch.zeros((len(states), width, states[0].shape[1]), dtype=dtype, device=device)
    mask = torch.zeros((len(states), width), dtype=torch.long, device=device)
    for row, state in enumerate(states):
        hidden[row, : state.shape[0]] = state.to(dtype)
        mask[row, : state.shape[0]] = 1
    return hidden, mask
