"""Merge LoRA adapters: exactly in ΔW space, rank-limited by SVD, or the paper's A/B averaging.

An adapter in memory is ``(state, config)``: ``state`` uses peft's saved key layout
(``<module>.lora_A.weight`` with shape ``(r, in)`` and ``<module>.lora_B.weight`` with shape
``(out, r)``, adapter name stripped) and ``config`` is a :class:`peft.LoraConfig`. The update
an adapter applies to a module is ``ΔW = scaling · B · A`` with ``scaling = lora_alpha / r``
(``lora_alpha / sqrt(r)`` under rsLoRA).

Three merges of adapters ``i`` with weights ``w_i``, each returning a new ``(state, config)``:

* :func:`merge_delta`: concatenates ranks, so ``ΔW = Σ w_i · ΔW_i`` exactly (rank ``Σ r_i``);
* :func:`merge_svd`: the same sum truncated to ``rank`` by SVD (the best rank-``rank`` fit);
* :func:`merge_ab_average`: ``A = Σ w_i A_i``, ``B = Σ w_i B_i`` as the LSAT paper's code does;
  its product adds cross terms ``w_i w_j B_i A_j`` and is *not* a weighted sum of updates.

Every merge validates all inputs before building anything and refuses non-finite results.
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import operator
from collections.abc import Iterable, Mapping, Sequence

import torch
from peft import LoraConfig

from lsat.adapters.model.errors import MergeError

__all__ = [
    "LORA_A_SUFFIX",
    "LORA_B_SUFFIX",
    "LoraAdapter",
    "delta_weights",
    "lora_pairs",
    "lora_scaling",
    "merge_ab_average",
    "merge_delta",
    "merge_svd",
]

LORA_A_SUFFIX = ".lora_A.weight"
LORA_B_SUFFIX = ".lora_B.weight"

LoraAdapter = tuple[dict[str, torch.Tensor], LoraConfig]
"""A LoRA adapter in memory: peft-layout state dict and its config."""


def lora_pairs(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Group a peft-layout LoRA state dict into ``{module_path: (A, B)}``.

    >>> state = {"m.q_proj.lora_A.weight": torch.ones(2, 3),
    ...          "m.q_proj.lora_B.weight": torch.ones(4, 2)}
    >>> {path: (tuple(a.shape), tuple(b.shape)) for path, (a, b) in lora_pairs(state).items()}
    {'m.q_proj': ((2, 3), (4, 2))}
    >>> lora_pairs({"m.q_proj.lora_A.weight": torch.ones(2, 3)})
    Traceback (most recent call last):
    ...
    lsat.adapters.model.errors.MergeError: module 'm.q_proj' has lora_A but no lora_B
    """
    a_by_module: dict[str, torch.Tensor] = {}
    b_by_module: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith(LORA_A_SUFFIX):
            a_by_module[key[: -len(LORA_A_SUFFIX)]] = tensor
        elif key.endswith(LORA_B_SUFFIX):
            b_by_module[key[: -len(LORA_B_SUFFIX)]] = tensor
        else:
            raise MergeError(
                f"state key {key!r} is not a LoRA weight (expected '*{LORA_A_SUFFIX}' or "
                f"'*{LORA_B_SUFFIX}'; DoRA, bias and modules_to_save entries are not supported)"
            )
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for module in sorted(a_by_module.keys() | b_by_module.keys()):
        if module not in b_by_module:
            raise MergeError(f"module {module!r} has lora_A but no lora_B")
        if module not in a_by_module:
            raise MergeError(f"module {module!r} has lora_B but no lora_A")
        a, b = a_by_module[module], b_by_module[module]
        if a.dim() != 2 or b.dim() != 2:
            raise MergeError(
                f"module {module!r}: only linear LoRA layers are supported, got A of shape "
                f"{tuple(a.shape)} and B of shape {tuple(b.shape)}"
            )
        if a.shape[0] != b.shape[1]:
            raise MergeError(
                f"module {module!r}: rank mismatch, A has {a.shape[0]} rows but B has "
                f"{b.shape[1]} columns"
            )
        pairs[module] = (a, b)
    if not pairs:
        raise MergeError("state holds no LoRA weights")
    return pairs


def lora_scaling(config: LoraConfig) -> float:
    """The factor peft applies to ``B · A``: ``lora_alpha / r`` (``/ sqrt(r)`` under rsLoRA).

    >>> lora_scaling(LoraConfig(r=8, lora_alpha=16))
    2.0
    >>> lora_scaling(LoraConfig(r=4, lora_alpha=8, use_rslora=True))
    4.0
    """
    if getattr(config, "use_dora", False):
        raise MergeError("DoRA adapters (use_dora=True) are not supported")
    if getattr(config, "rank_pattern", None) or getattr(config, "alpha_pattern", None):
        raise MergeError(
            f"per-module rank_pattern/alpha_pattern are not supported: "
            f"{config.rank_pattern!r} / {config.alpha_pattern!r}"
        )
    if not isinstance(config.r, int) or config.r <= 0:
        raise MergeError(f"LoRA rank r must be a positive integer, got {config.r!r}")
    if config.use_rslora:
        return config.lora_alpha / math.sqrt(config.r)
    return config.lora_alpha / config.r


def _checked_pairs(
    state: Mapping[str, torch.Tensor], config: LoraConfig, label: str
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``lora_pairs`` plus a check that every A/B rank equals ``config.r``."""
    try:
        pairs = lora_pairs(state)
    except MergeError as exc:
        raise MergeError(f"{label}: {exc}") from None
    for module, (a, _) in pairs.items():
        if a.shape[0] != config.r:
            raise MergeError(
                f"{label}: module {module!r} has rank {a.shape[0]} but config.r is {config.r}"
            )
    return pairs


def delta_weights(state: Mapping[str, torch.Tensor], config: LoraConfig) -> dict[str, torch.Tensor]:
    """The update ``ΔW = scaling · B · A`` of each module, shape ``(out, in)``.

    >>> state = {"m.lora_A.weight": torch.ones(1, 2), "m.lora_B.weight": torch.ones(3, 1)}
    >>> delta_weights(state, LoraConfig(r=1, lora_alpha=2))["m"]
    tensor([[2., 2.],
            [2., 2.],
            [2., 2.]])
    """
    scaling = lora_scaling(config)
    pairs = _checked_pairs(state, config, "adapter")
    return {module: scaling * (b @ a) for module, (a, b) in pairs.items()}


def _validated(
    adapters: Sequence[LoraAdapter], weights: Sequence[float]
) -> tuple[list[dict[str, tuple[torch.Tensor, torch.Tensor]]], list[float], list[float]]:
    """Check adapters and weights together; return each adapter's pairs, scalings and weights."""
    if len(adapters) == 0:
        raise MergeError("no adapters to merge")
    if len(weights) != len(adapters):
        raise MergeError(f"got {len(adapters)} adapters but {len(weights)} weights: {weights!r}")
    checked_weights: list[float] = []
    for index, weight in enumerate(weights):
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise MergeError(f"weight {index} must be a real number, got {weight!r}")
        if not math.isfinite(weight):
            raise MergeError(f"weight {index} must be finite, got {weight!r}")
        checked_weights.append(float(weight))

    all_pairs = []
    scalings = []
    for index, (state, config) in enumerate(adapters):
        try:
            scalings.append(lora_scaling(config))
        except MergeError as exc:
            raise MergeError(f"adapter {index}: {exc}") from None
        all_pairs.append(_checked_pairs(state, config, f"adapter {index}"))

    reference = all_pairs[0]
    base_name = adapters[0][1].base_model_name_or_path
    for index, pairs in enumerate(all_pairs[1:], start=1):
        other_name = adapters[index][1].base_model_name_or_path
        if base_name and other_name and base_name != other_name:
            raise MergeError(
                f"adapter {index} was trained on base model {other_name!r}, "
                f"adapter 0 on {base_name!r}"
            )
        missing = sorted(reference.keys() - pairs.keys())
        extra = sorted(pairs.keys() - reference.keys())
        if missing or extra:
            raise MergeError(
                f"adapter {index} targets other modules than adapter 0: "
                f"missing {missing[:5]!r}, extra {extra[:5]!r}"
            )
        for module, (a, b) in pairs.items():
            ref_a, ref_b = reference[module]
            shape, ref_shape = (b.shape[0], a.shape[1]), (ref_b.shape[0], ref_a.shape[1])
            if shape != ref_shape:
                raise MergeError(
                    f"adapter {index}: module {module!r} updates a weight of shape {shape}, "
                    f"adapter 0 one of {ref_shape}"
                )
    return all_pairs, scalings, checked_weights


def _result_dtypes(all_pairs: list[dict[str, tuple[torch.Tensor, torch.Tensor]]]) -> torch.dtype:
    """The common dtype of all inputs (the dtype the merged weights are stored in)."""
    dtype = next(iter(all_pairs[0].values()))[0].dtype
    for pairs in all_pairs:
        for a, b in pairs.values():
            dtype = torch.promote_types(torch.promote_types(dtype, a.dtype), b.dtype)
    return dtype


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Merge arithmetic runs in at least float32 (bf16/fp16 inputs are upcast)."""
    return torch.promote_types(dtype, torch.float32)


def _derived_config(config: LoraConfig, rank: int) -> LoraConfig:
    """A copy of ``config`` with rank ``rank`` and scaling 1 (``lora_alpha = r``, no rsLoRA)."""
    derived = copy.deepcopy(config)
    derived.r = rank
    derived.lora_alpha = rank
    derived.use_rslora = False
    return derived


def _total(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """``terms[0] + terms[1] + …`` (at least one term: :func:`_validated` refuses no adapters)."""
    return functools.reduce(operator.add, terms)


def _require_finite(state: Mapping[str, torch.Tensor], what: str) -> None:
    for key, tensor in state.items():
        if not bool(torch.isfinite(tensor).all()):
            raise MergeError(f"{what} produced non-finite values in {key!r}; refusing the result")


def merge_delta(adapters: Sequence[LoraAdapter], weights: Sequence[float]) -> LoraAdapter:
    """Exact weighted sum of updates: ``ΔW = Σ w_i · ΔW_i`` by concatenating ranks.

    ``A = vstack(A_i)`` and ``B = hstack(w_i · s_i · B_i)``; the config has ``r = Σ r_i`` and
    ``lora_alpha = r`` (scaling 1).

    >>> one = ({"m.lora_A.weight": torch.ones(1, 2), "m.lora_B.weight": torch.ones(2, 1)},
    ...        LoraConfig(r=1, lora_alpha=2))
    >>> state, config = merge_delta([one, one], [0.5, 0.25])
    >>> config.r, config.lora_alpha, tuple(state["m.lora_A.weight"].shape)
    (2, 2, (2, 2))
    >>> delta_weights(state, config)["m"]
    tensor([[1.5000, 1.5000],
            [1.5000, 1.5000]])
    """
    all_pairs, scalings, checked_weights = _validated(adapters, weights)
    dtype = _result_dtypes(all_pairs)
    work = _compute_dtype(dtype)
    merged: dict[str, torch.Tensor] = {}
    for module in all_pairs[0]:
        a_parts = [pairs[module][0].to(work) for pairs in all_pairs]
        b_parts = [
            (weight * scaling) * pairs[module][1].to(work)
            for pairs, weight, scaling in zip(all_pairs, checked_weights, scalings, strict=True)
        ]
        merged[module + LORA_A_SUFFIX] = torch.cat(a_parts, dim=0).to(dtype).contiguous()
        merged[module + LORA_B_SUFFIX] = torch.cat(b_parts, dim=1).to(dtype).contiguous()
    _require_finite(merged, "merge_delta")
    total_rank = sum(config.r for _, config in adapters)
    return merged, _derived_config(adapters[0][1], total_rank)


def merge_svd(adapters: Sequence[LoraAdapter], weights: Sequence[float], rank: int) -> LoraAdapter:
    """``Σ w_i · ΔW_i`` truncated to ``rank`` by SVD (exact when ``rank ≥ Σ r_i``).

    ``B = U_k · S_k`` and ``A = V_kᵀ``; the config has ``r = lora_alpha = rank``.

    >>> one = ({"m.lora_A.weight": torch.tensor([[1.0, 0.0]]),
    ...         "m.lora_B.weight": torch.tensor([[3.0], [0.0]])}, LoraConfig(r=1, lora_alpha=1))
    >>> two = ({"m.lora_A.weight": torch.tensor([[0.0, 1.0]]),
    ...         "m.lora_B.weight": torch.tensor([[0.0], [1.0]])}, LoraConfig(r=1, lora_alpha=1))
    >>> state, config = merge_svd([one, two], [1.0, 1.0], rank=1)
    >>> delta_weights(state, config)["m"]  # keeps the larger direction only
    tensor([[3., 0.],
            [0., 0.]])
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise MergeError(f"rank must be a positive integer, got {rank!r}")
    all_pairs, scalings, checked_weights = _validated(adapters, weights)
    dtype = _result_dtypes(all_pairs)
    work = _compute_dtype(dtype)
    merged: dict[str, torch.Tensor] = {}
    for module, (ref_a, ref_b) in all_pairs[0].items():
        out_features, in_features = ref_b.shape[0], ref_a.shape[1]
        if rank > min(out_features, in_features):
            raise MergeError(
                f"rank {rank} exceeds the size of module {module!r}'s weight "
                f"({out_features} x {in_features})"
            )
    for module in all_pairs[0]:
        delta = _total(
            (weight * scaling) * (pairs[module][1].to(work) @ pairs[module][0].to(work))
            for pairs, weight, scaling in zip(all_pairs, checked_weights, scalings, strict=True)
        )
        if not bool(torch.isfinite(delta).all()):
            raise MergeError(f"merge_svd produced non-finite values in {module!r}; refusing it")
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        merged[module + LORA_A_SUFFIX] = vh[:rank].to(dtype).contiguous()
        merged[module + LORA_B_SUFFIX] = (u[:, :rank] * s[:rank]).to(dtype).contiguous()
    _require_finite(merged, "merge_svd")
    return merged, _derived_config(adapters[0][1], rank)


def merge_ab_average(adapters: Sequence[LoraAdapter], weights: Sequence[float]) -> LoraAdapter:
    """The LSAT paper's merge: ``A = Σ w_i A_i`` and ``B = Σ w_i B_i`` separately.

    Needs equal ``r``, ``lora_alpha`` and rsLoRA setting. The result's update is
    ``s · (Σ w_i B_i)(Σ w_j A_j)``, which includes cross terms ``w_i w_j B_i A_j`` (i ≠ j); it
    equals :func:`merge_delta` only in special cases (one adapter with weight 1, identical
    adapters whose weights sum to 1, or weights in {0, 1} with ``B_i A_j = 0`` for i ≠ j).

    >>> one = ({"m.lora_A.weight": torch.ones(1, 2), "m.lora_B.weight": torch.ones(2, 1)},
    ...        LoraConfig(r=1, lora_alpha=1))
    >>> state, config = merge_ab_average([one, one], [0.5, 0.5])
    >>> delta_weights(state, config)["m"]
    tensor([[1., 1.],
            [1., 1.]])
    """
    all_pairs, _, checked_weights = _validated(adapters, weights)
    first = adapters[0][1]
    for index, (_, config) in enumerate(adapters[1:], start=1):
        if (config.r, config.lora_alpha, config.use_rslora) != (
            first.r,
            first.lora_alpha,
            first.use_rslora,
        ):
            raise MergeError(
                f"A/B averaging needs equal r, lora_alpha and use_rslora: adapter {index} has "
                f"{(config.r, config.lora_alpha, config.use_rslora)}, adapter 0 has "
                f"{(first.r, first.lora_alpha, first.use_rslora)}"
            )
    dtype = _result_dtypes(all_pairs)
    work = _compute_dtype(dtype)
    merged: dict[str, torch.Tensor] = {}
    for module in all_pairs[0]:
        a_sum = _total(
            w * p[module][0].to(work) for p, w in zip(all_pairs, checked_weights, strict=True)
        )
        b_sum = _total(
            w * p[module][1].to(work) for p, w in zip(all_pairs, checked_weights, strict=True)
        )
        merged[module + LORA_A_SUFFIX] = a_sum.to(dtype).contiguous()
        merged[module + LORA_B_SUFFIX] = b_sum.to(dtype).contiguous()
    _require_finite(merged, "merge_ab_average")
    return merged, copy.deepcopy(first)
