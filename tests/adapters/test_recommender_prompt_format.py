"""A recommender built with a prompt format encodes, trains and scores with that format."""

from __future__ import annotations

import numpy as np
import pytest

from lsat.adapters.model.base_model import BaseLM
from lsat.adapters.model.prompts import PromptError, build_prompt
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig
from lsat.data.collaborative import annotate_samples
from tests.adapters.conftest import TOY_TITLES, toy_samples


def test_the_prompt_format_decides_what_is_scored(tiny_base: BaseLM) -> None:
    samples = annotate_samples(toy_samples(12))
    scores = {}
    for prompt_format in ("tallrec", "tallrec_hints", "chat"):
        rec = LoraRecommender(
            tiny_base, TOY_TITLES, item_noun="product", prompt_format=prompt_format, progress=False
        )
        encoded = rec._encode(samples[:1])
        assert encoded.prompts == [
            build_prompt(samples[0], TOY_TITLES, "product", prompt_format, tiny_base.tokenizer)
        ]
        scores[prompt_format] = rec.score(None, samples)
    assert not np.allclose(scores["tallrec"], scores["tallrec_hints"])
    assert not np.allclose(scores["tallrec"], scores["chat"])


def test_trains_with_hints(tiny_base: BaseLM) -> None:
    samples = annotate_samples(toy_samples(16))
    rec = LoraRecommender(
        tiny_base,
        TOY_TITLES,
        prompt_format="tallrec_hints",
        train_config=TrainConfig(batch_size=8),
        progress=False,
    )
    report = rec.train_adapter("hints", samples[:12], samples[12:])
    assert report.steps == 2
    assert rec.score("hints", samples).shape == (16,)


def test_unknown_format_is_refused_up_front(tiny_base: BaseLM) -> None:
    with pytest.raises(PromptError, match="'json'"):
        LoraRecommender(tiny_base, TOY_TITLES, prompt_format="json")
