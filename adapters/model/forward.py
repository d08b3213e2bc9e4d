"""The answer-position forward pass, split at a layer so frozen lower layers can be cached.

Only the two logit rows that matter (" Yes", " No") are computed: the final hidden state at
each prompt's last token times two rows of the LM head, never the full-vocabulary head.
Batches are right-padded, so real tokens never attend to padding and results match an
unpadded forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, cast

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lsat.adapters.model.prompts import ANSWER_NO, ANSWER_YES

__all__ = [
    "Decoder",
    "ForwardError",
    "answer_head_rows",
    "answer_logits",
    "answer_logits_from_hidden",
    "answer_token_ids",
    "causal_lm",
    "decoder_of",
    "hidden_entering_layer",
    "num_layers",
]


class ForwardError(RuntimeError):
    """The model or tokenizer does not fit the answer-token scoring scheme."""


class Decoder(Protocol):
    """The decoder stack of a Hugging Face causal LM (e.g. ``LlamaModel``): what we use of it."""

    embed_tokens: nn.Module
    layers: nn.ModuleList
    norm: nn.Module

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


def answer_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """Token ids of " Yes" and " No"; each must be a single token."""
    ids = []
    for text in (ANSWER_YES, ANSWER_NO):
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) != 1:
            raise ForwardError(f"{text!r} is not a single token for this tokenizer: {encoded}")
        ids.append(int(encoded[0]))
    return ids[0], ids[1]


def causal_lm(model: nn.Module) -> PreTrainedModel:
    """The HF causal LM under a peft wrapper (or the model itself)."""
    get_base_model = getattr(model, "get_base_model", None)
    inner = get_base_model() if get_base_model is not None else model
    return cast(PreTrainedModel, inner)


def decoder_of(model: nn.Module) -> Decoder:
    """The decoder stack (``embed_tokens``, ``layers``, ``norm``) of a causal LM or peft model."""
    decoder = getattr(causal_lm(model), "model", None)
    if decoder is None or not hasattr(decoder, "layers") or not hasattr(decoder, "embed_tokens"):
        raise ForwardError(f"{type(model).__name__} has no decoder with .layers/.embed_tokens")
    return decoder


def num_layers(model: nn.Module) -> int:
    """Number of decoder layers."""
    return len(decoder_of(model).layers)


def answer_head_rows(
    model: nn.Module, token_ids: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The LM head's (2, hidden) weight rows of ``token_ids`` and their bias (or ``None``)."""
    head = causal_lm(model).get_output_embeddings()
    index = torch.tensor(token_ids, device=head.weight.device)
    bias = head.bias[index] if getattr(head, "bias", None) is not None else None
    return head.weight[index], bias


def _project(
    model: nn.Module, last_hidden: torch.Tensor, lengths: torch.Tensor, token_ids: tuple[int, int]
) -> torch.Tensor:
    rows = torch.arange(last_hidden.shape[0], device=last_hidden.device)
    at_answer = last_hidden[rows, lengths - 1]
    weight, bias = answer_head_rows(model, token_ids)
    logits = at_answer @ weight.to(at_answer.dtype).T
    if bias is not None:
        logits = logits + bias.to(logits.dtype)
    return logits.float()


def answer_logits(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_ids: tuple[int, int],
) -> torch.Tensor:
    """(batch, 2) logits of " Yes"/" No" after each right-padded prompt (full forward)."""
    out = decoder_of(model)(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return _project(model, out.last_hidden_state, attention_mask.sum(dim=1), token_ids)


class _StopForward(Exception):
    pass


def hidden_entering_layer(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int
) -> torch.Tensor:
    """Hidden states (batch, seq, hidden) entering layer ``layer`` (only lower layers run)."""
    decoder = decoder_of(model)
    if layer == 0:
        return decoder.embed_tokens(input_ids)
    if not 0 < layer < len(decoder.layers):
        raise ForwardError(f"layer {layer} out of range 0..{len(decoder.layers) - 1}")
    captured: list[torch.Tensor] = []

    def grab(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append(args[0] if args else kwargs["hidden_states"])
        raise _StopForward

    handle = decoder.layers[layer].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured[0]


@contextmanager
def _only_layers_from(decoder: Decoder, start: int) -> Iterator[None]:
    full = decoder.layers
    decoder.layers = nn.ModuleList(list(full)[start:])
    try:
        yield
    finally:
        decoder.layers = full


def answer_logits_from_hidden(
    model: nn.Module,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    start_layer: int,
    token_ids: tuple[int, int],
) -> torch.Tensor:
    """(batch, 2) answer logits running only layers ``start_layer..`` on cached hidden states."""
    decoder = decoder_of(model)
    with _only_layers_from(decoder, start_layer):
        out = decoder(inputs_embeds=hidden, attention_mask=attention_mask, use_cache=False)
    return _project(model, out.last_hidden_state, attention_mask.sum(dim=1), token_ids)
