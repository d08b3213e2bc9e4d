"""Shared-prefix ranking: score many candidates of one user with the prompt prefix encoded once.

Every candidate prompt of a user starts with the same instruction + history; only the target
differs. :class:`PrefixRanker` splits each group of prompts at their longest common token
prefix (:func:`split_shared_prefix`), runs the prefix once and keeps its keys and values per
layer, then runs every candidate's suffix tokens packed into one sequence; a suffix token
attends to the one prefix copy and causally to its own suffix
(:func:`~lsat.adapters.model.prefix_attention.suffix_attention`). The token ids are exactly
the unshared path's, so the scores equal it up to float rounding.

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
    """One group's candidates inside a packed chunk: tokens [start, start + layout.total)."""

    start: int
    layout: SuffixLayout
    prior: KV | None


class PrefixRanker:
    """Scores groups of prompts that share a prefix, for several adapters in one pass.

    ``max_tokens`` bounds the tokens per forward chunk (a request with thousands of candidates
    runs in bounded memory); ``bucket_size`` candidates (sorted by length) share one padded
    width in the own-suffix attention. Groups with the same prefix in one call run it once;
    with a ``cache`` (:class:`~lsat.adapters.model.prefix_cache.PrefixKVCache`) a prefix seen
    by an earlier call with the same adapters and precision is not run again.
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

        Raises :class:`RankingUnsupported` when :meth:`unsupported` names a reason.
        """
        unique = list(dict.fromkeys(adapters))
        reason = self.unsupported(model, unique)
        if reason is not None:
            raise RankingUnsupported(reason)
        if not groups:
            return []
        dtype = torch.bfloat16 if bf16 else torch.float32
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                plans, start = self.planner.plan(model, unique, dtype)
                run = _Run(model, plans, start, len(unique) if start < len(plans) else 1, dtype)
                priors = self._prefixes(run, groups, (tuple(unique), str(dtype)))
                probs = self._suffixes(run, groups, priors, answer_ids)
        finally:
            model.train(was_training)
        rows = [unique.index(a) if run.streams > 1 else 0 for a in adapters]
        return [p[rows] for p in probs]

    def _prefixes(
        self, run: _Run, groups: Sequence[PromptGroup], setup: tuple[object, ...]
    ) -> list[KV | None]:
        """Per group: per layer (K, V) of its prefix; ``None`` for an empty prefix. ``setup``
        (adapters, precision) completes the cache key."""
        priors: list[KV | None] = [None] * len(groups)
        known: dict[tuple[int, ...], KV] = {}
        todo: list[tuple[int, ...]] = []
        for group in groups:
            prefix = group.prefix
            if not prefix or prefix in known or prefix in todo:
                continue
            cached = None if self.cache is None else self.cache.get((prefix, *setup))
            if cached is None:
                todo.append(prefix)
            else:
                known[prefix] = cached
        for chunk in _chunks([len(p) for p in todo], self.max_tokens):
            members = [todo[i] for i in chunk]
            layout = SuffixLayout([len(p) for p in members], run.device)
            ids = [t for p in members for t in p]
            _, kv = run.forward(ids, layout.positions(0), [_Segment(0, layout, None)], kv=True)
            offset = 0
            for prefix in members:
                part = slice(offset, offset + len(prefix))
                known[prefix] = [
                    (_heads_first(k[:, part]), _heads_first(v[:, part])) for k, v in kv
                ]
                if self.cache is not None:
                    self.cache.put((prefix, *setup), known[prefix])
                offset += len(prefix)
        for g, group in enumerate(groups):
            if group.prefix:
                priors[g] = known[group.prefix]
        return priors

    def _suffixes(
        self,
        run: _Run,
        groups: Sequence[PromptGroup],
        priors: list[KV | None],
        answer_ids: tuple[int, int],
    ) -> list[np.ndarray]:
        """P(yes) per group (streams, candidates); candidates run sorted by length per group."""
        owners = sorted(
            ((g, c) for g, group in enumerate(groups) for c in range(len(group.suffixes))),
            key=lambda gc: (gc[0], len(groups[gc[0]].suffixes[gc[1]])),
        )
        lengths = [len(groups[g].suffixes[c]) for g, c in owners]
        results = [np.empty((run.streams, len(group.suffixes))) for group in groups]
        weight, bias = answer_head_rows(run.model, answer_ids)
        for chunk in _chunks(lengths, self.max_tokens):
            segments: list[_Segment] = []
            ids: list[int] = []
            positions: list[torch.Tensor] = []
            offset = 0
            members = [owners[i] for i in chunk]
            for g in dict.fromkeys(g for g, _ in members):
                suffixes = [groups[g].suffixes[c] for gg, c in members if gg == g]
                layout = SuffixLayout(
                    [len(x) for x in suffixes], run.device, bucket_size=self.bucket_size
                )
                segments.append(_Segment(offset, layout, priors[g]))
                ids.extend(t for x in suffixes for t in x)
                positions.append(layout.positions(len(groups[g].prefix)))
                offset += layout.total
            last = torch.cat([seg.layout.last_rows + seg.start for seg in segments])
            hidden, _ = run.forward(ids, torch.cat(positions), segments, kv=False, keep=last)
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
        kv: bool,
        keep: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Every layer on the packed ``ids``: the last hidden states (S, N, H), only the
        ``keep`` rows (S, len(keep), H) when given; with ``kv`` also each layer's keys/values
        (S, N, kvh, d), stopping after the last layer's."""
        device = self.device
        tokens = torch.tensor(ids, dtype=torch.long, device=device)
        hidden = decoder_of(self.model).embed_tokens(tokens)[None].float()
        rope = rope_tables(self.model, positions.to(device))
        collected: list[tuple[torch.Tensor, torch.Tensor]] = []
        last = len(self.plans) - 1
        for index, plan in enumerate(self.plans):
            if index == self.start and self.streams > 1:
                hidden = hidden.expand(self.streams, -1, -1)
            attend = functools.partial(_attend, segments=segments, layer=index)
            out, k, v = run_layer(
                plan,
                hidden,
                rope,
                attend,
                self.dtype,
                kv_only=kv and index == last,
                keep=keep if index == last else None,
            )
            if kv:
                collected.append((k, v))
            if out is not None:
                hidden = out
        return hidden, collected


def _attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    segments: list[_Segment],
    layer: int,
) -> torch.Tensor:
    """Each segment's suffix tokens over its own prefix keys/values at ``layer`` (``q`` comes
    scaled already)."""
    outputs = []
    for seg in segments:
        part = slice(seg.start, seg.start + seg.layout.total)
        prior = seg.prior[layer] if seg.prior is not None else (None, None)
        outputs.append(
            suffix_attention(q[:, part], k[:, part], v[:, part], seg.layout, 1.0, *prior)
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
