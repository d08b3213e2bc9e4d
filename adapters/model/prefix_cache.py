"""A bounded cache of prompt prefixes' keys and values across requests.

Every request for one user starts with the same instruction + history tokens until the user's
history changes. :class:`~lsat.adapters.model.prefix_ranking.PrefixRanker` runs that prefix
once per request; with a :class:`PrefixKVCache` it runs it once per *history*: the next
``/score`` or ``/recommend`` of the same user reuses the prefix's keys and values per layer and
runs only the candidates' suffix tokens. The values are the ones the prefix pass produced, so
scores are the same as without the cache.

Entries are keyed by the prefix's token ids, the adapters that ran (by name) and the precision,
and evicted least-recently-used beyond ``max_bytes``. Adapter names stand for weights: the
recommender clears the cache whenever it adds, replaces or removes an adapter.

>>> import torch
>>> cache = PrefixKVCache(max_bytes=1024)
>>> kv = [(torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8))]  # 256 bytes
>>> key = ((1, 2, 3, 4), ("long-v1-0",), "torch.float32")
>>> cache.get(key) is None, cache.put(key, kv), cache.get(key) is kv
(True, True, True)
>>> cache.hits, cache.misses, cache.bytes
(1, 1, 256)
>>> cache.put(((9,), (), "x"), kv * 4)  # 1,024 bytes: the older entry goes
True
>>> len(cache), cache.get(key) is None
(1, True)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import torch

__all__ = ["KV", "PrefixKVCache"]

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer (keys, values) of a prefix, each (streams, kv_heads, prefix_len, d)."""


def kv_bytes(kv: KV) -> int:
    """Bytes held by the tensors of ``kv``."""
    return sum(t.numel() * t.element_size() for pair in kv for t in pair)


class PrefixKVCache:
    """LRU map key → prefix keys/values, bounded by ``max_bytes`` (see the module docstring)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[KV, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> KV | None:
        """The entry for ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: Hashable, kv: KV) -> bool:
        """Keep ``kv`` under ``key``, evicting the least recently used entries beyond
        ``max_bytes``; False (nothing kept) when ``kv`` alone is larger than that."""
        size = kv_bytes(kv)
        if size > self.max_bytes:
            return False
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            while self._entries and self.bytes + size > self.max_bytes:
                _, (_, freed) = self._entries.popitem(last=False)
                self.bytes -= freed
            self._entries[key] = (kv, size)
            self.bytes += size
            return True

    def clear(self) -> None:
        """Forget every entry (the adapters behind the keys changed)."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0
