"""Shared-prefix ranking: score many candidates of one user with the prompt prefix encoded once.

Every candidate prompt of a user starts with the same instruction + history; only the target
differs. :class:`PrefixRanker` splits each group of prompts at their longest common token
prefix (:func:`split_shared_prefix`) and packs the prefix once, followed by every candidate's
suffix tokens, into one sequence: prefix tokens attend causally among themselves, a suffix
token to the one prefix copy (its keys and values at the same layer) and causally to its own
suffix (:func:`~lsat.adapters.model.prefix_attention.suffix_attention`); the prefix's keys and
values per layer are kept for the cache. The token ids are exactly the unshared path's, so the
scores equal it up to float rounding.

Adapters: every adapter (long, short, merged, or ``None`` = the bare base model) is a *stream*
through the same pass, sharing the frozen layers below the lowest adapted one
(:mod:`~lsat.adapters.model.stream_layers`, which also holds the precision: bf16 matmuls on
cached bf16 weights with an fp32 residual stream, or fp32 throughout). Only the answer position
is projected, on the two " Yes"/" No" rows of the head. Candidates run sorted by length, in
chunks of at most ``max_tokens`` tokens. Llama-architecture models only;
:meth:`PrefixRanker.unsupported` says why a model or adapter cannot use it (callers then use
the plain path).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lsat.adapters.model.forward import answer_head_rows, decoder_of
from lsat.adapters.model.prefix_attention import SuffixLayout, suffix_attention
from lsat.adapters.model.prefix_cache import KV, PrefixKVCache
from lsat.adapters.model.stream_layers import (
    LayerPlan,
    RankingUnsupported,
    StreamPlanner,
    rope_tables,
    run_layer,
)

__all__ = ["PrefixRanker", "PromptGroup", "RankingUnsupported", "split_shared_prefix"]


@dataclass(frozen=True)
class PromptGroup:
    """Token ids of one user's candidate prompts: the shared prefix and each candidate's rest."""

    prefix: tuple[int, ...]
    suffixes: tuple[tuple[int, ...], ...]


def split_shared_prefix(token_lists: Sequence[Sequence[int]]) -> PromptGroup:
    """Split prompts at their longest common token prefix, leaving every suffix one token or more.

    A lone prompt is not split: it runs as one suffix, in one pass instead of two.

    >>> split_shared_prefix([[1, 2, 3, 4], [1, 2, 5]])
    PromptGroup(prefix=(1, 2), suffixes=((3, 4), (5,)))
    >>> split_shared_prefix([[7, 8]])
    PromptGroup(prefix=(), suffixes=((7, 8),))
    """
    if not token_lists or min(len(t) for t in token_lists) == 0:
        raise ValueError("cannot rank an empty group or an empty prompt")
    if len(token_lists) == 1:
        return PromptGroup((), (tuple(token_lists[0]),))
    first = token_lists[0]
    shared = min(len(t) for t in token_lists) - 1
    for tokens in token_lists[1:]:
        for i in range(shared):
            if tokens[i] != first[i]:
                shared = i
                break
    return PromptGroup(tuple(first[:shared]), tuple(tuple(t[shared:]) for t in token_lists))


@dataclass
class _Segment:
    """One run of tokens inside a packed chunk: tokens [start, start + layout.total).

    A group's candidates see their prefix's keys/values: ``prior`` when they are known (cached or
    run by an earlier chunk), else ``source``, the prefix's own segment in the same chunk. A
    prefix segment (no prior, no source, one causal run) is the prompt prefix itself.
    """

    start: int
    layout: SuffixLayout
    prior: KV | None
    source: _Segment | None = None

    @property
    def rows(self) -> slice:
        return slice(self.start, self.start + self.layout.total)


class PrefixRanker:
    """Scores groups of prompts that share a prefix, for several adapters in one pass.

    ``max_tokens`` bounds the tokens per forward chunk (a request with thousands of candidates
    runs in bounded memory); ``bucket_size`` candidates (sorted by length) share one padded
    width in the own-suffix attention. A prefix not known yet runs in the same pass as its
    first candidates (its rows attend causally to themselves, the candidates' to them), so a
    request costs one pass over the weights, not two; groups with the same prefix in one call
    run it once; with a ``cache``
    (:class:`~lsat.adapters.model.prefix_cache.PrefixKVCache`) a prefix seen by an earlier call
    with the same adapters and precision is not run again.
    """

    def __init__(
        self,
        *,
        max_tokens: int = 4096,
        bucket_size: int = 16,
        cache: PrefixKVCache | None = None,
    ) -> None:
        if max_tokens < 1 or bucket_size < 1:
            raise ValueError(
                f"max_tokens and bucket_size must be >= 1, got {max_tokens}, {bucket_size}"
            )
        self.max_tokens = max_tokens
        self.bucket_size = bucket_size
        self.cache = cache
        self.planner = StreamPlanner()

    def unsupported(self, model: nn.Module, adapters: Sequence[str | None]) -> str | None:
        """Why ``model`` with ``adapters`` cannot use this path, or ``None`` when it can."""
        return self.planner.unsupported(model, adapters)

    def score(
        self,
        model: nn.Module,
        groups: Sequence[PromptGroup],
        adapters: Sequence[str | None],
        answer_ids: tuple[int, int],
        *,
        bf16: bool = False,
    ) -> list[np.ndarray]:
        """P(" Yes") per group as an array (len(adapters), candidates), in input order.

        Raises :class:`RankingUnsupported` when :meth:`unsupported` names a reason. The model's
        train/eval mode does not matter: the layers run functionally, without dropout.
        """
        unique = list(dict.fromkeys(adapters))
        reason = self.unsupported(model, unique)
        if reason is not None:
            raise RankingUnsupported(reason)
        if not groups:
            return []
        dtype = torch.bfloat16 if bf16 else torch.float32
        with torch.inference_mode():
            plans, start = self.planner.plan(model, unique, dtype)
            run = _Run(model, plans, start, len(unique) if start < len(plans) else 1, dtype)
            setup = (tuple(unique), str(dtype))
            probs = self._rank(run, groups, self._cached(groups, setup), setup, answer_ids)
        rows = [unique.index(a) if run.streams > 1 else 0 for a in adapters]
        return [p[rows] for p in probs]

    def _cached(
        self, groups: Sequence[PromptGroup], setup: tuple[object, ...]
    ) -> dict[tuple[int, ...], KV]:
        """Per layer (K, V) of each group's prefix the cache holds; ``setup`` (adapters,
        precision) completes the cache key."""
        known: dict[tuple[int, ...], KV] = {}
        if self.cache is None:
            return known
        asked: set[tuple[int, ...]] = set()
        for group in groups:
            prefix = group.prefix
            if not prefix or prefix in asked:
                continue
            asked.add(prefix)
            cached = self.cache.get((prefix, *setup))
            if cached is not None:
                known[prefix] = cached
        return known

    def _rank(
        self,
        run: _Run,
        groups: Sequence[PromptGroup],
        known: dict[tuple[int, ...], KV],
        setup: tuple[object, ...],
        answer_ids: tuple[int, int],
    ) -> list[np.ndarray]:
        """P(yes) per group (streams, candidates); candidates run sorted by length per group,
        an unknown prefix with its group's first chunk (its tokens count in that chunk)."""
        owners = sorted(
            ((g, c) for g, group in enumerate(groups) for c in range(len(group.suffixes))),
            key=lambda gc: (gc[0], len(groups[gc[0]].suffixes[gc[1]])),
        )
        costs = [len(groups[g].suffixes[c]) for g, c in owners]
        charged: set[tuple[int, ...]] = set()
        for i, (g, _) in enumerate(owners):
            prefix = groups[g].prefix
            if prefix and prefix not in known and prefix not in charged:
                charged.add(prefix)
                costs[i] += len(prefix)
        results = [np.empty((run.streams, len(group.suffixes))) for group in groups]
        weight, bias = answer_head_rows(run.model, answer_ids)
        for chunk in _chunks(costs, self.max_tokens):
            members = [owners[i] for i in chunk]
            segments: list[_Segment] = []
            running: dict[tuple[int, ...], _Segment] = {}
            candidates: list[_Segment] = []
            ids: list[int] = []
            positions: list[torch.Tensor] = []
            for g in dict.fromkeys(g for g, _ in members):
                prefix = groups[g].prefix
                if prefix and prefix not in known and prefix not in running:
                    layout = SuffixLayout([len(prefix)], run.device)
                    running[prefix] = _Segment(len(ids), layout, None)
                    segments.append(running[prefix])
                    ids.extend(prefix)
                    positions.append(layout.positions(0))
                suffixes = [groups[g].suffixes[c] for gg, c in members if gg == g]
                layout = SuffixLayout(
                    [len(x) for x in suffixes], run.device, bucket_size=self.bucket_size
                )
                segment = _Segment(len(ids), layout, known.get(prefix), running.get(prefix))
                segments.append(segment)
                candidates.append(segment)
                ids.extend(t for x in suffixes for t in x)
                positions.append(layout.positions(len(prefix)))
            last = torch.cat([seg.layout.last_rows + seg.start for seg in candidates])
            hidden, collected = run.forward(
                ids,
                torch.cat(positions),
                segments,
                keep=last,
                collect=[seg.rows for seg in running.values()],
            )
            for prefix, kv in zip(running, collected, strict=True):
                known[prefix] = kv
                if self.cache is not None:
                    self.cache.put((prefix, *setup), kv)
            at_answer = decoder_of(run.model).norm(hidden.float())
            logits = at_answer @ weight.float().T
            if bias is not None:
                logits = logits + bias.float()
            p_yes = torch.softmax(logits, dim=-1)[..., 0].double().cpu().numpy()
            for column, (g, c) in enumerate(members):
                results[g][:, c] = p_yes[:, column]
        return results


@dataclass
class _Run:
    """One scoring call: the model, its layer plans, where the adapter streams begin."""

    model: nn.Module
    plans: list[LayerPlan]
    start: int
    streams: int
    dtype: torch.dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(
        self,
        ids: list[int],
        positions: torch.Tensor,
        segments: list[_Segment],
        *,
        keep: torch.Tensor,
        collect: Sequence[slice] = (),
    ) -> tuple[torch.Tensor, list[KV]]:
        """Every layer on the packed ``ids``: the last hidden states of the ``keep`` rows
        (S, len(keep), H); and per ``collect`` row range its keys/values per layer
        ((S, kvh, rows, d) each, S = 1 below the first adapted layer)."""
        device = self.device
        tokens = torch.tensor(ids, dtype=torch.long, device=device)
        hidden = decoder_of(self.model).embed_tokens(tokens)[None].float()
        rope = rope_tables(self.model, positions.to(device))
        collected: list[KV] = [[] for _ in collect]
        last = len(self.plans) - 1
        for index, plan in enumerate(self.plans):
            if index == self.start and self.streams > 1:
                hidden = hidden.expand(self.streams, -1, -1)
            attend = functools.partial(_attend, segments=segments, layer=index)
            hidden, k, v = run_layer(
                plan, hidden, rope, attend, self.dtype, keep=keep if index == last else None
            )
            for rows, layers in zip(collect, collected, strict=True):
                layers.append((_heads_first(k[:, rows]), _heads_first(v[:, rows])))
        return hidden, collected


def _attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    segments: list[_Segment],
    layer: int,
) -> torch.Tensor:
    """Each segment's tokens over its prefix keys/values at ``layer`` — cached, or its prefix
    segment's in this chunk — and causally over its own (``q`` comes scaled already)."""
    outputs = []
    in_chunk: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for seg in segments:
        rows = seg.rows
        prior: tuple[torch.Tensor, torch.Tensor] | tuple[None, None]
        if seg.source is not None:
            source = seg.source.rows
            if source.start not in in_chunk:
                in_chunk[source.start] = (_heads_first(k[:, source]), _heads_first(v[:, source]))
            prior = in_chunk[source.start]
        else:
            prior = seg.prior[layer] if seg.prior is not None else (None, None)
        outputs.append(
            suffix_attention(q[:, rows], k[:, rows], v[:, rows], seg.layout, 1.0, *prior)
        )
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)


def _heads_first(x: torch.Tensor) -> torch.Tensor:
    """(S, tokens, heads, d) → contiguous (S, heads, tokens, d)."""
    return x.transpose(1, 2).contiguous()


def _chunks(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive index runs whose lengths sum to at most ``budget`` (one item at least).

    >>> _chunks([3, 3, 3, 5, 1], 6)
    [[0, 1], [2], [3, 4]]
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        if current and used + n > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        chunks.append(current)
    return chunks
