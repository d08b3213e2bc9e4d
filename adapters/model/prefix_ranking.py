"""Shared-prefix ranking: score many candidates of one user with the prompt prefix encoded once.

Every candidate prompt of a user starts with the same instruction + history; only the target
differs. :class:`PrefixRanker` splits each group of prompts at their longest common token
prefix (:func:`split_shared_prefix`), runs the prefix once and keeps its keys and values per
layer, then runs every candidate's suffix tokens packed into one sequence; a suffix token
attends to the one prefix copy and causally to its own suffix
(:func:`~lsat.adapters.model.prefix_attention.suffix_attention`). The token ids are exactly
the unshared path's, so the scores equal it up to float rounding.

Adapters: layers below the lowest LoRA-adapted layer are frozen, so they run once (one
*stream*) for every adapter; from there on each adapter (long, short, merged, or ``None`` = the
bare base model) has its own stream, and the streams go through each base matmul together with
the adapters' LoRA deltas added per stream. Only the answer position is projected, on the two
" Yes"/" No" rows of the head.

Precision: ``bf16=True`` runs the matmuls in bf16 on bf16 copies of the base weights (cast
once and cached, q/k/v and gate/up fused), with the residual stream, norms, rotary embedding
and softmax in fp32, like bf16 autocast; ``False`` runs everything in fp32 on the model's own
weights. Llama-architecture models only; :meth:`PrefixRanker.unsupported` says why a model or
adapter cannot use it (callers then use the plain path).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lsat.adapters.model.errors import AdapterError
from lsat.adapters.model.forward import answer_head_rows, causal_lm, decoder_of
from lsat.adapters.model.prefix_attention import SuffixLayout, suffix_attention

__all__ = ["PrefixRanker", "PromptGroup", "RankingUnsupported", "split_shared_prefix"]

ATTENTION = ("q_proj", "k_proj", "v_proj")
PROJECTIONS = (*ATTENTION, "o_proj", "gate_proj", "up_proj", "down_proj")
SUPPORTED_MODEL_TYPES = frozenset({"llama"})


class RankingUnsupported(AdapterError, ValueError):
    """The model or an adapter does not fit the shared-prefix path; use the plain path."""


@dataclass(frozen=True)
class PromptGroup:
    """Token ids of one user's candidate prompts: the shared prefix and each candidate's rest."""

    prefix: tuple[int, ...]
    suffixes: tuple[tuple[int, ...], ...]


def split_shared_prefix(token_lists: Sequence[Sequence[int]]) -> PromptGroup:
    """Split prompts at their longest common token prefix, leaving every suffix one token or more.

    >>> split_shared_prefix([[1, 2, 3, 4], [1, 2, 5]])
    PromptGroup(prefix=(1, 2), suffixes=((3, 4), (5,)))
    >>> split_shared_prefix([[7, 8]])
    PromptGroup(prefix=(7,), suffixes=((8,),))
    """
    if not token_lists or min(len(t) for t in token_lists) == 0:
        raise ValueError("cannot rank an empty group or an empty prompt")
    first = token_lists[0]
    shared = min(len(t) for t in token_lists) - 1
    for tokens in token_lists[1:]:
        for i in range(shared):
            if tokens[i] != first[i]:
                shared = i
                break
    return PromptGroup(tuple(first[:shared]), tuple(tuple(t[shared:]) for t in token_lists))


@dataclass
class _Lora:
    a: torch.Tensor
    b: torch.Tensor
    b_bias: torch.Tensor | None
    scaling: float


@dataclass
class _Layer:
    module: nn.Module
    qkv: list[tuple[torch.Tensor, torch.Tensor | None, list[int]]]
    o: tuple[torch.Tensor, torch.Tensor | None]
    gate_up: list[tuple[torch.Tensor, torch.Tensor | None, list[int]]]
    down: tuple[torch.Tensor, torch.Tensor | None]
    loras: dict[str, list[_Lora | None]]  # projection → one entry per stream


@dataclass
class _Segment:
    """Candidates of one group inside a packed chunk: tokens [start, start + layout.total)."""

    start: int
    layout: SuffixLayout
    prior: list[tuple[torch.Tensor, torch.Tensor]] | None  # per layer (K, V): (S, kvh, P, d)


def _base(module: nn.Module) -> nn.Module:
    return module.get_base_layer() if hasattr(module, "get_base_layer") else module


def _is_lora(module: nn.Module) -> bool:
    return isinstance(getattr(module, "lora_A", None), nn.ModuleDict)


class PrefixRanker:
    """Scores groups of prompts that share a prefix, for several adapters in one pass.

    ``max_tokens`` bounds the suffix (and prefix) tokens per forward chunk, so a request with
    thousands of candidates runs in bounded memory.
    """

    def __init__(self, *, max_tokens: int = 4096) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.max_tokens = max_tokens
        self._fused: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()

    # ---- what can run -----------------------------------------------------------------------
    def unsupported(self, model: nn.Module, adapters: Sequence[str | None]) -> str | None:
        """Why ``model`` with ``adapters`` cannot use this path, or ``None`` when it can."""
        config = getattr(causal_lm(model), "config", None)
        model_type = getattr(config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            return f"model type {model_type!r} is not one of {sorted(SUPPORTED_MODEL_TYPES)}"
        try:
            layers = decoder_of(model).layers
        except Exception as exc:
            return str(exc)
        allowed: set[int] = set()
        for layer in layers:
            for name in PROJECTIONS:
                owner = layer.self_attn if name in (*ATTENTION, "o_proj") else layer.mlp
                module = getattr(owner, name, None)
                if module is None:
                    return f"decoder layer has no {name}"
                allowed.add(id(module))
        wanted = {name for name in adapters if name is not None}
        for path, module in model.named_modules():
            held = set(getattr(module, "lora_A", {}) or {}) | set(
                getattr(module, "lora_embedding_A", {}) or {}
            )
            hit = wanted & held
            if not hit:
                continue
            if id(module) not in allowed or not _is_lora(module):
                return f"adapter(s) {sorted(hit)} adapt {path}, outside the decoder projections"
            if getattr(module, "merged", False):
                return f"{path} has merged adapters {module.merged_adapters}"
            variants = set(getattr(module, "lora_variant", {}) or {}) & hit
            if variants:
                return f"adapter(s) {sorted(variants)} at {path} are LoRA variants (e.g. DoRA)"
        return None

    # ---- weights ----------------------------------------------------------------------------
    def _layer_weights(self, layer: nn.Module, dtype: torch.dtype) -> dict:
        attn, mlp = layer.self_attn, layer.mlp
        bases = [_base(getattr(attn, n)) for n in (*ATTENTION, "o_proj")]
        bases += [_base(getattr(mlp, n)) for n in ("gate_proj", "up_proj", "down_proj")]
        version = tuple((id(b.weight), b.weight._version) for b in bases)
        cached = self._fused.setdefault(layer, {}).get(dtype)
        if cached is not None and cached["version"] == version:
            return cached
        q, k, v, o, gate, up, down = bases

        def pair(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
            bias = None if module.bias is None else module.bias.detach().to(dtype)
            return module.weight.detach().to(dtype), bias

        def fused(modules: list[nn.Module]) -> list[tuple[torch.Tensor, torch.Tensor | None, list]]:
            if dtype == torch.float32:  # the model's own weights, no copies
                return [(*pair(m), [m.weight.shape[0]]) for m in modules]
            weight = torch.cat([m.weight.detach() for m in modules]).to(dtype).contiguous()
            biases = [m.bias for m in modules]
            bias = None
            if any(b is not None for b in biases):
                bias = torch.cat(
                    [
                        b.detach() if b is not None else m.weight.new_zeros(m.weight.shape[0])
                        for m, b in zip(modules, biases, strict=True)
                    ]
                ).to(dtype)
            return [(weight, bias, [m.weight.shape[0] for m in modules])]

        entry = {
            "version": version,
            "qkv": fused([q, k, v]),
            "o": pair(o),
            "gate_up": fused([gate, up]),
            "down": pair(down),
        }
        self._fused[layer][dtype] = entry
        return entry

    def _plan(
        self, model: nn.Module, adapters: list[str | None], dtype: torch.dtype
    ) -> tuple[list[_Layer], int]:
        """Per layer weights and LoRA per stream; and the first layer any adapter touches."""
        layers = decoder_of(model).layers
        plans, start = [], len(layers)
        for index, layer in enumerate(layers):
            weights = self._layer_weights(layer, dtype)
            loras: dict[str, list[_Lora | None]] = {}
            for name in PROJECTIONS:
                owner = layer.self_attn if name in (*ATTENTION, "o_proj") else layer.mlp
                module = getattr(owner, name)
                per_stream: list[_Lora | None] = []
                for adapter in adapters:
                    if adapter is not None and _is_lora(module) and adapter in module.lora_A:
                        b = module.lora_B[adapter]
                        per_stream.append(
                            _Lora(
                                module.lora_A[adapter].weight.detach().to(dtype),
                                b.weight.detach().to(dtype),
                                None if b.bias is None else b.bias.detach().to(dtype),
                                float(module.scaling[adapter]),
                            )
                        )
                        start = min(start, index)
                    else:
                        per_stream.append(None)
                if any(per_stream):
                    loras[name] = per_stream
            plans.append(
                _Layer(
                    layer, weights["qkv"], weights["o"], weights["gate_up"], weights["down"], loras
                )
            )
        return plans, start

    # ---- the forward ------------------------------------------------------------------------
    @staticmethod
    def _linear(
        x: torch.Tensor,
        parts: list[tuple[torch.Tensor, torch.Tensor | None, list[int]]],
        names: Sequence[str],
        loras: dict[str, list[_Lora | None]],
    ) -> list[torch.Tensor]:
        """x (S, N, in) through (possibly fused) base weights plus each stream's LoRA."""
        outs: list[torch.Tensor] = []
        for weight, bias, sizes in parts:
            y = F.linear(x, weight, bias)
            outs.extend(torch.split(y, sizes, dim=-1) if len(sizes) > 1 else [y])
        for name, out in zip(names, outs, strict=True):
            for stream, lora in enumerate(loras.get(name, ())):
                if lora is not None and stream < x.shape[0]:
                    delta = F.linear(F.linear(x[stream], lora.a), lora.b, lora.b_bias)
                    out[stream].add_(delta, alpha=lora.scaling)
        return outs

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _run_layer(
        self,
        plan: _Layer,
        index: int,
        hidden: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        segments: list[_Segment],
        dtype: torch.dtype,
        kv_only: bool,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        layer, attn = plan.module, plan.module.self_attn
        streams, tokens, _ = hidden.shape
        x = layer.input_layernorm(hidden).to(dtype)
        q, k, v = self._linear(x, plan.qkv, ATTENTION, plan.loras)
        dim = attn.head_dim
        cos, sin = rope
        q = self._rotate(q.float().view(streams, tokens, -1, dim), cos, sin).to(dtype)
        k = self._rotate(k.float().view(streams, tokens, -1, dim), cos, sin).to(dtype)
        v = v.reshape(streams, tokens, -1, dim)
        if kv_only:
            return None, k, v
        outputs = []
        for seg in segments:
            part = slice(seg.start, seg.start + seg.layout.total)
            prior = seg.prior[index] if seg.prior is not None else (None, None)
            qs, ks, vs = q[:, part], k[:, part], v[:, part]
            outputs.append(suffix_attention(qs, ks, vs, seg.layout, attn.scaling, *prior))
        mixed = (outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)).flatten(2)
        (o,) = self._linear(mixed, [(*plan.o, [plan.o[0].shape[0]])], ("o_proj",), plan.loras)
        hidden = hidden + o.float()
        x = layer.post_attention_layernorm(hidden).to(dtype)
        gate, up = self._linear(x, plan.gate_up, ("gate_proj", "up_proj"), plan.loras)
        inner = layer.mlp.act_fn(gate) * up
        (down,) = self._linear(
            inner, [(*plan.down, [plan.down[0].shape[0]])], ("down_proj",), plan.loras
        )
        return hidden + down.float(), k, v

    def _forward(
        self,
        model: nn.Module,
        plans: list[_Layer],
        start: int,
        streams: int,
        ids: torch.Tensor,
        positions: torch.Tensor,
        segments: list[_Segment],
        dtype: torch.dtype,
        *,
        collect_kv: bool,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Run every layer on packed ``ids``; returns the last hidden states (or, with
        ``collect_kv``, stops after the last layer's keys/values) and the per-layer (K, V)."""
        decoder = decoder_of(model)
        hidden = decoder.embed_tokens(ids)[None].float()
        cos, sin = decoder.rotary_emb(hidden, positions[None])
        rope = (cos.float()[:, :, None, :], sin.float()[:, :, None, :])
        kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        last = len(plans) - 1
        for index, plan in enumerate(plans):
            if index == start and streams > 1:
                hidden = hidden.expand(streams, -1, -1)
            out, k, v = self._run_layer(
                plan, index, hidden, rope, segments, dtype, kv_only=collect_kv and index == last
            )
            if collect_kv:
                kv.append((k, v))
            if out is not None:
                hidden = out
        return hidden, kv

    # ---- public -----------------------------------------------------------------------------
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
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                plans, start = self._plan(model, unique, dtype)
                streams = len(unique) if start < len(plans) else 1
                priors = self._prefixes(model, plans, start, streams, groups, dtype, device)
                probs = self._suffixes(
                    model, plans, start, streams, groups, priors, answer_ids, dtype, device
                )
        finally:
            model.train(was_training)
        rows = [unique.index(a) if streams > 1 else 0 for a in adapters]
        return [p[rows] for p in probs]

    def _prefixes(
        self,
        model: nn.Module,
        plans: list[_Layer],
        start: int,
        streams: int,
        groups: Sequence[PromptGroup],
        dtype: torch.dtype,
        device: torch.device,
    ) -> list[list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """Per group: per layer (K, V) of its prefix, (S, kv_heads, prefix_len, d); or None."""
        priors: list[list[tuple[torch.Tensor, torch.Tensor]] | None] = [None] * len(groups)
        todo = [g for g, group in enumerate(groups) if group.prefix]
        for chunk in _chunks([len(groups[g].prefix) for g in todo], self.max_tokens):
            members = [todo[i] for i in chunk]
            layout = SuffixLayout([len(groups[g].prefix) for g in members], device)
            ids = torch.tensor(
                [t for g in members for t in groups[g].prefix], dtype=torch.long, device=device
            )
            _, kv = self._forward(
                model,
                plans,
                start,
                streams,
                ids,
                layout.positions(0),
                [_Segment(0, layout, None)],
                dtype,
                collect_kv=True,
            )
            offset = 0
            for g in members:
                part = slice(offset, offset + len(groups[g].prefix))
                priors[g] = [(_heads_first(k[:, part]), _heads_first(v[:, part])) for k, v in kv]
                offset += len(groups[g].prefix)
        return priors

    def _suffixes(
        self,
        model: nn.Module,
        plans: list[_Layer],
        start: int,
        streams: int,
        groups: Sequence[PromptGroup],
        priors: list[list[tuple[torch.Tensor, torch.Tensor]] | None],
        answer_ids: tuple[int, int],
        dtype: torch.dtype,
        device: torch.device,
    ) -> list[np.ndarray]:
        owners = [(g, c) for g, group in enumerate(groups) for c in range(len(group.suffixes))]
        lengths = [len(groups[g].suffixes[c]) for g, c in owners]
        results = [np.empty((streams, len(group.suffixes))) for group in groups]
        decoder = decoder_of(model)
        weight, bias = answer_head_rows(model, answer_ids)
        for chunk in _chunks(lengths, self.max_tokens):
            segments, ids, positions, offset = [], [], [], 0
            members = [owners[i] for i in chunk]
            for g in dict.fromkeys(g for g, _ in members):
                cands = [c for gg, c in members if gg == g]
                layout = SuffixLayout([len(groups[g].suffixes[c]) for c in cands], device)
                segments.append(_Segment(offset, layout, priors[g]))
                ids.extend(t for c in cands for t in groups[g].suffixes[c])
                positions.append(layout.positions(len(groups[g].prefix)))
                offset += layout.total
            hidden, _ = self._forward(
                model,
                plans,
                start,
                streams,
                torch.tensor(ids, dtype=torch.long, device=device),
                torch.cat(positions),
                segments,
                dtype,
                collect_kv=False,
            )
            last = torch.cat([seg.layout.last_rows + seg.start for seg in segments])
            at_answer = decoder.norm(hidden[:, last].float())
            logits = at_answer @ weight.float().T
            if bias is not None:
                logits = logits + bias.float()
            p_yes = torch.softmax(logits, dim=-1)[..., 0].double().cpu().numpy()
            for column, (g, c) in enumerate(members):
                results[g][:, c] = p_yes[:, column]
        return results


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
