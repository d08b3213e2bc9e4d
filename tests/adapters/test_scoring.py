from __future__ import annotations

import numpy as np
import pytest
import torch

from lsat.adapters.model.forward import answer_token_ids, hidden_entering_layer
from lsat.adapters.model.layer_cache import HiddenStateCache
from lsat.adapters.model.prompts import build_prompt
from lsat.adapters.model.scoring import EncodedPrompts, score_prompts
from tests.adapters.conftest import TOY_TITLES, toy_samples


@pytest.fixture
def encoded(tiny_base) -> EncodedPrompts:
    prompts = [build_prompt(s, TOY_TITLES) for s in toy_samples(24, seed=5)]
    return EncodedPrompts(tiny_base.tokenizer, prompts)


def full_vocab_reference(model, tokenizer, prompts) -> np.ndarray:
    """P(Yes) from the plain HF forward of each prompt alone, full-vocabulary logits."""
    yes, no = answer_token_ids(tokenizer)
    out = []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False)])
            logits = model(input_ids=ids).logits[0, -1]
            out.append(torch.softmax(logits[[yes, no]], dim=-1)[0].item())
    return np.array(out)


def test_matches_unpadded_full_vocab_forward(tiny_base, encoded) -> None:
    ours = score_prompts(tiny_base.model, encoded, batch_size=5)
    reference = full_vocab_reference(tiny_base.model, tiny_base.tokenizer, encoded.prompts)
    assert np.all((ours > 0) & (ours < 1))
    np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize(
    ("batch_size", "bucketed"), [(1, False), (7, False), (7, True), (64, True)]
)
def test_batching_and_bucketing_do_not_change_scores(tiny_base, encoded, batch_size, bucketed):
    base = score_prompts(tiny_base.model, encoded, batch_size=3)
    other = score_prompts(tiny_base.model, encoded, batch_size=batch_size, bucketed=bucketed)
    np.testing.assert_allclose(other, base, atol=1e-5)


def test_batch_order_invariant(tiny_base, encoded) -> None:
    scores = score_prompts(tiny_base.model, encoded, batch_size=4)
    order = np.random.default_rng(0).permutation(len(encoded))
    shuffled = EncodedPrompts(tiny_base.tokenizer, [encoded.prompts[i] for i in order])
    np.testing.assert_allclose(
        score_prompts(tiny_base.model, shuffled, batch_size=4), scores[order], atol=1e-5
    )


@pytest.mark.parametrize("start_layer", [1, 2, 3])
def test_layer_cache_equals_full_forward(tiny_base, encoded, start_layer) -> None:
    cache = HiddenStateCache()
    plain = score_prompts(tiny_base.model, encoded, batch_size=4)
    first = score_prompts(
        tiny_base.model, encoded, batch_size=4, start_layer=start_layer, cache=cache
    )
    assert len(cache) == len(encoded) and cache.hits == 0
    second = score_prompts(
        tiny_base.model, encoded, batch_size=6, start_layer=start_layer, cache=cache
    )
    assert cache.hits == len(encoded)
    np.testing.assert_allclose(first, plain, atol=1e-5)
    np.testing.assert_allclose(second, plain, atol=1e-5)


def test_hidden_entering_layer_matches_hf_hidden_states(tiny_base, encoded) -> None:
    ids = torch.tensor([encoded.ids[0]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        reference = tiny_base.model(input_ids=ids, output_hidden_states=True).hidden_states[2]
        ours = hidden_entering_layer(tiny_base.model, ids, mask, 2)
    torch.testing.assert_close(ours, reference)


def test_bf16_autocast_stays_close(tiny_base, encoded) -> None:
    fp32 = score_prompts(tiny_base.model, encoded, batch_size=8)
    bf16 = score_prompts(tiny_base.model, encoded, batch_size=8, bf16=True)
    assert np.abs(bf16 - fp32).max() < 0.05


def test_multi_token_answer_is_rejected() -> None:
    from lsat.adapters.model.forward import ForwardError

    class Splitter:
        def encode(self, text, add_special_tokens=False):
            return [1, 2]

    with pytest.raises(ForwardError, match="Yes"):
        answer_token_ids(Splitter())
