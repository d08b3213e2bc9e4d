"""Batched P(like) scoring: softmax over the " Yes"/" No" logits at the answer position.

No gradients, length-bucketed batches, the two-row head, and (when only upper layers carry
LoRA) the frozen lower layers' output reused from a :class:`HiddenStateCache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from lsat.adapters.model.batching import encode_prompts, length_batches, pad_id_of, right_pad
from lsat.adapters.model.forward import (
    answer_logits,
    answer_logits_from_hidden,
    answer_token_ids,
    hidden_entering_layer,
)
from lsat.adapters.model.layer_cache import HiddenStateCache, pad_hidden

__all__ = ["EncodedPrompts", "batch_logits", "model_device", "precision_context", "score_prompts"]


def precision_context(bf16: bool, device_type: str = "cpu") -> torch.autocast | nullcontext:
    """bf16 autocast on ``device_type`` ("cpu" or "cuda") when asked, else a no-op context."""
    return torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else nullcontext()


def model_device(model: nn.Module) -> torch.device:
    """The device holding the model's parameters (inputs are moved there)."""
    return next(model.parameters()).device


class EncodedPrompts:
    """Prompts with their token ids, the pad id and the answer token ids of one tokenizer."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> None:
        self.prompts = list(prompts)
        self.ids = encode_prompts(tokenizer, self.prompts)
        self.lengths = [len(ids) for ids in self.ids]
        self.pad_id = pad_id_of(tokenizer)
        self.answer_ids = answer_token_ids(tokenizer)

    def __len__(self) -> int:
        return len(self.prompts)


def _lower_hidden(
    model: nn.Module,
    encoded: EncodedPrompts,
    indices: Sequence[int],
    start_layer: int,
    cache: HiddenStateCache,
    bf16: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded hidden states entering ``start_layer`` for ``indices``; computes only misses."""
    precision = "bf16" if bf16 else "fp32"
    states: dict[int, torch.Tensor] = {}
    for i in indices:
        hit = cache.get(encoded.prompts[i], start_layer, precision)
        if hit is not None:
            states[i] = hit
    missing = [i for i in indices if i not in states]
    if missing:
        device = model_device(model)
        ids, mask = right_pad([encoded.ids[i] for i in missing], encoded.pad_id)
        ids, mask = ids.to(device), mask.to(device)
        with torch.no_grad(), precision_context(bf16, device.type):
            hidden = hidden_entering_layer(model, ids, mask, start_layer).float()
        for row, i in enumerate(missing):
            state = hidden[row, : encoded.lengths[i]]
            cache.put(encoded.prompts[i], start_layer, state, precision)
            states[i] = state
    return pad_hidden([states[i] for i in indices])


def batch_logits(
    model: nn.Module,
    encoded: EncodedPrompts,
    indices: Sequence[int],
    *,
    start_layer: int = 0,
    cache: HiddenStateCache | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """(len(indices), 2) answer logits; gradients flow if enabled by the caller.

    With a cache and ``start_layer > 0`` only layers ``start_layer..`` run on the cached inputs.
    """
    device = model_device(model)
    if cache is not None and start_layer > 0:
        hidden, mask = _lower_hidden(model, encoded, indices, start_layer, cache, bf16)
        hidden, mask = hidden.to(device), mask.to(device)
        with precision_context(bf16, device.type):
            return answer_logits_from_hidden(model, hidden, mask, start_layer, encoded.answer_ids)
    ids, mask = right_pad([encoded.ids[i] for i in indices], encoded.pad_id)
    ids, mask = ids.to(device), mask.to(device)
    with precision_context(bf16, device.type):
        return answer_logits(model, ids, mask, encoded.answer_ids)


def score_prompts(
    model: nn.Module,
    encoded: EncodedPrompts,
    *,
    batch_size: int = 16,
    start_layer: int = 0,
    cache: HiddenStateCache | None = None,
    bf16: bool = False,
    bucketed: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """P(" Yes") vs " No" for every prompt, in input order (float64 array)."""
    result = np.empty(len(encoded), dtype=np.float64)
    batches = length_batches(encoded.lengths, batch_size, bucketed=bucketed)
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc="scoring", unit="batch", disable=not progress, leave=False):
            with torch.no_grad():
                logits = batch_logits(
                    model, encoded, batch, start_layer=start_layer, cache=cache, bf16=bf16
                )
            result[batch] = torch.softmax(logits, dim=-1)[:, 0].double().cpu().numpy()
    finally:
        model.train(was_training)
    return result
