"""Llama decoder layers run functionally on *streams*: one copy of the hidden states per adapter.

A stream is the hidden states of the same tokens under one adapter (long, short, merged, or
``None`` = the bare base model). All streams go through each base matmul together, and each
stream's LoRA delta (``scaling · B(A(x))``) is added to its own rows, so several adapters cost
one pass over the base weights. Below the lowest adapted layer every stream would be equal, so
there is only one.

:class:`StreamPlanner` checks that a model fits (:meth:`StreamPlanner.unsupported`), and builds
per-layer plans: base weights (fp32: the model's own tensors; bf16: cast once, q/k/v and
gate/up fused, cached until a weight changes) and each stream's LoRA. :func:`run_layer` runs one
decoder layer: RMSNorm, q/k/v, rotary embedding (fp32), attention (a callback: the caller knows
which token sees which), o, residual, RMSNorm, SwiGLU MLP, residual. The residual stream stays
fp32; matmuls run in the plan's dtype, like bf16 autocast.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lsat.adapters.model.errors import AdapterError
from lsat.adapters.model.forward import causal_lm, decoder_of

__all__ = [
    "PROJECTIONS",
    "LayerPlan",
    "RankingUnsupported",
    "StreamPlanner",
    "rope_tables",
    "run_layer",
]

ATTENTION = ("q_proj", "k_proj", "v_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
PROJECTIONS = (*ATTENTION, "o_proj", *MLP)
SUPPORTED_MODEL_TYPES = frozenset({"llama"})

Weights = list[tuple[torch.Tensor, torch.Tensor | None, list[int]]]
"""(weight, bias, output sizes) per matmul; a fused matmul's output splits into several."""

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(q (S, N, h, d), already multiplied by the layer's attention scaling; k (S, N, kvh, d); v)
→ attention output (S, N, h, d)."""


class RankingUnsupported(AdapterError, ValueError):
    """The model or an adapter does not fit the stream layers; use the plain path."""


@dataclass
class _Lora:
    a: torch.Tensor
    b: torch.Tensor
    b_bias: torch.Tensor | None
    scaling: float


@dataclass
class LayerPlan:
    """One decoder layer's weights in the run dtype and each stream's LoRA per projection."""

    module: Any  # the HF decoder layer (its submodules are reached by attribute)
    qkv: Weights
    o: Weights
    gate_up: Weights
    down: Weights
    loras: dict[str, list[_Lora | None]]

    def project(
        self, x: torch.Tensor, weights: Weights, names: Sequence[str]
    ) -> list[torch.Tensor]:
        """x (S, N, in) through the base weights plus each stream's LoRA, one tensor per name."""
        outs: list[torch.Tensor] = []
        for weight, bias, sizes in weights:
            y = F.linear(x, weight, bias)
            outs.extend(torch.split(y, sizes, dim=-1) if len(sizes) > 1 else [y])
        for name, out in zip(names, outs, strict=True):
            for stream, lora in enumerate(self.loras.get(name, ())):
                if lora is not None and stream < x.shape[0]:
                    delta = F.linear(F.linear(x[stream], lora.a), lora.b, lora.b_bias)
                    out[stream].add_(delta, alpha=lora.scaling)
        return outs


def _base(module: Any) -> Any:
    return module.get_base_layer() if hasattr(module, "get_base_layer") else module


def _is_lora(module: Any) -> bool:
    return isinstance(getattr(module, "lora_A", None), nn.ModuleDict)


def _projection(layer: Any, name: str) -> Any:
    owner = layer.mlp if name in MLP else layer.self_attn
    return getattr(owner, name, None)


class StreamPlanner:
    """Checks models and builds :class:`LayerPlan` lists; caches cast/fused base weights."""

    def __init__(self) -> None:
        self._cast: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()

    def unsupported(self, model: nn.Module, adapters: Sequence[str | None]) -> str | None:
        """Why ``model`` with ``adapters`` cannot run here, or ``None`` when it can."""
        config = getattr(causal_lm(model), "config", None)
        model_type = getattr(config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            return f"model type {model_type!r} is not one of {sorted(SUPPORTED_MODEL_TYPES)}"
        try:
            layers = decoder_of(model).layers
        except Exception as exc:  # any shape mismatch means "not supported"
            return str(exc)
        allowed: set[int] = set()
        for layer in layers:
            for name in PROJECTIONS:
                module = _projection(layer, name)
                if module is None:
                    return f"decoder layer has no {name}"
                allowed.add(id(module))
        wanted = {name for name in adapters if name is not None}
        for path, module in model.named_modules():
            held = set(getattr(module, "lora_A", {}) or {})
            held |= set(getattr(module, "lora_embedding_A", {}) or {})
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

    def _weights(self, layer: Any, dtype: torch.dtype) -> dict[str, Any]:
        bases = [_base(_projection(layer, name)) for name in PROJECTIONS]
        version = tuple((id(b.weight), b.weight._version) for b in bases)
        cached = self._cast.setdefault(layer, {}).get(dtype)
        if cached is not None and cached["version"] == version:
            return cached
        q, k, v, o, gate, up, down = bases

        def cast(modules: list[Any]) -> Weights:
            if dtype == torch.float32 or len(modules) == 1:  # fp32: the model's own tensors
                return [
                    (
                        m.weight.detach().to(dtype),
                        None if m.bias is None else m.bias.detach().to(dtype),
                        [m.weight.shape[0]],
                    )
                    for m in modules
                ]
            weight = torch.cat([m.weight.detach() for m in modules]).to(dtype).contiguous()
            bias = None
            if any(m.bias is not None for m in modules):
                bias = torch.cat(
                    [
                        m.bias.detach() if m.bias is not None else m.weight.new_zeros(len(m.weight))
                        for m in modules
                    ]
                ).to(dtype)
            return [(weight, bias, [m.weight.shape[0] for m in modules])]

        entry = {
            "version": version,
            "qkv": cast([q, k, v]),
            "o": cast([o]),
            "gate_up": cast([gate, up]),
            "down": cast([down]),
        }
        self._cast[layer][dtype] = entry
        return entry

    def plan(
        self, model: nn.Module, adapters: Sequence[str | None], dtype: torch.dtype
    ) -> tuple[list[LayerPlan], int]:
        """Per layer plans, one stream per adapter; and the first layer any adapter touches
        (``len(layers)`` when none does)."""
        layers: Any = decoder_of(model).layers
        plans, start = [], len(layers)
        for index, layer in enumerate(layers):
            weights = self._weights(layer, dtype)
            loras: dict[str, list[_Lora | None]] = {}
            for name in PROJECTIONS:
                module = _projection(layer, name)
                per_stream: list[_Lora | None] = []
                for adapter in adapters:
                    if adapter is None or not _is_lora(module) or adapter not in module.lora_A:
                        per_stream.append(None)
                        continue
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
                if any(per_stream):
                    loras[name] = per_stream
            plans.append(
                LayerPlan(
                    layer, weights["qkv"], weights["o"], weights["gate_up"], weights["down"], loras
                )
            )
        return plans, start


def rope_tables(model: nn.Module, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, signed sin), each (1, N, 1, d) fp32, for :func:`_rotate` at ``positions`` (N,)."""
    decoder: Any = decoder_of(model)
    probe = torch.empty(0, dtype=torch.float32, device=positions.device)
    cos, sin = decoder.rotary_emb(probe, positions[None])
    half = sin.shape[-1] // 2
    signed = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
    return cos.float()[:, :, None, :], signed.float()[:, :, None, :]


def _rotate(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotary embedding in fp32: x·cos + rotate_half(x)·sin, with rotate_half folded into
    a roll and the signed sin table."""
    cos, signed_sin = rope
    x32 = x.float()
    out = x32 * cos
    return out.addcmul_(x32.roll(x.shape[-1] // 2, dims=-1), signed_sin)


def _norm(module: Any, hidden: torch.Tensor) -> torch.Tensor:
    eps = getattr(module, "variance_epsilon", None)
    if eps is None:
        return module(hidden)
    return F.rms_norm(hidden, (hidden.shape[-1],), module.weight, eps)


def run_layer(
    plan: LayerPlan,
    hidden: torch.Tensor,
    rope: tuple[torch.Tensor, torch.Tensor],
    attend: Attend,
    dtype: torch.dtype,
    *,
    keep: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decoder layer on hidden (S, N, H) fp32; returns (new hidden, rotated keys
    (S, N, kvh, d), values (S, N, kvh, d)), keys/values in ``dtype``.

    ``keep`` (row indices): only those rows go on after the attention (o, MLP), and the new
    hidden is (S, len(keep), H); the last layer needs only the answer rows.
    """
    layer = plan.module
    streams, tokens, _ = hidden.shape
    dim = int(layer.self_attn.head_dim)
    x = _norm(layer.input_layernorm, hidden).to(dtype)
    q, k, v = plan.project(x, plan.qkv, ATTENTION)
    scale = float(layer.self_attn.scaling)  # folded into q's rotary tables: no extra pass
    q = _rotate(q.view(streams, tokens, -1, dim), (rope[0] * scale, rope[1] * scale))
    k = _rotate(k.view(streams, tokens, -1, dim), rope)
    k = k.to(dtype)
    v = v.reshape(streams, tokens, -1, dim)
    mixed = attend(q.to(dtype), k, v).reshape(streams, tokens, -1).to(dtype)
    if keep is not None:
        mixed, hidden = mixed[:, keep], hidden[:, keep]
    (o,) = plan.project(mixed, plan.o, ("o_proj",))
    hidden = hidden + o
    x = _norm(layer.post_attention_layernorm, hidden).to(dtype)
    gate, up = plan.project(x, plan.gate_up, ("gate_proj", "up_proj"))
    (down,) = plan.project(layer.mlp.act_fn(gate) * up, plan.down, ("down_proj",))
    return hidden + down, k, v
