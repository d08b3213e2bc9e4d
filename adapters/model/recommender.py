"""LoraRecommender: one frozen base LM carrying named LoRA adapters that score TALLRec prompts.

The high-level API used by the experiment runner, the trainer and the live scorer::

    rec = LoraRecommender(base, titles)
    report = rec.train_adapter("short", train, validation)
    p_like = rec.score("short", samples)             # None scores the bare base model
    many = rec.score_many(["long", "short"], samples)  # lower layers computed once
    per_user = rec.score_groups(["long", "short"], [user_a_samples, user_b_samples])
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import cast

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from tqdm.auto import tqdm

from lsat.adapters.model.base_model import BaseLM
from lsat.adapters.model.batching import length_batches
from lsat.adapters.model.errors import AdapterError
from lsat.adapters.model.forward import answer_token_ids, num_layers
from lsat.adapters.model.layer_cache import HiddenStateCache
from lsat.adapters.model.prefix_cache import PrefixKVCache
from lsat.adapters.model.prefix_ranking import (
    PrefixRanker,
    PromptGroup,
    RankingUnsupported,
    split_shared_prefix,
)
from lsat.adapters.model.prompts import DEFAULT_PROMPT_FORMAT, build_prompt, check_prompt_format
from lsat.adapters.model.scoring import EncodedPrompts, batch_logits, score_prompts
from lsat.adapters.model.training import TrainConfig, TrainReport, train_lora
from lsat.data.types import Sample

__all__ = ["LoraRecommender", "RecommenderError"]

_PROBE_ITEMS = ("!lsat-probe", "~lsat-probe")
"""Two made-up targets (first bytes differ): where their prompts part, a user's history ends."""


class RecommenderError(AdapterError, ValueError):
    """A bad adapter name, config or state given to :class:`LoraRecommender`."""


def _lora_config(config: TrainConfig | LoraConfig) -> LoraConfig:
    return config.lora_config() if isinstance(config, TrainConfig) else copy.deepcopy(config)


class LoraRecommender:
    """A base LM plus named LoRA adapters that answer "will the user like X?" as P(Yes).

    ``titles`` is read at every call, so a live dict updated elsewhere is honoured.
    ``prompt_format`` is one of :data:`~lsat.adapters.model.prompts.PROMPT_FORMATS`.
    """

    def __init__(
        self,
        base: BaseLM,
        titles: Mapping[str, str],
        *,
        item_noun: str = "movie",
        prompt_format: str = DEFAULT_PROMPT_FORMAT,
        train_config: TrainConfig | None = None,
        batch_size: int = 16,
        bf16_scoring: bool | None = None,
        cache_bytes: int = 3 * 1024**3,
        prefix_cache_bytes: int = 0,
        progress: bool = True,
        device: str | None = None,
    ) -> None:
        if device is not None:
            # transformers wraps PreTrainedModel.to in functools.wraps, whose stub loses `self`
            base.model.to(device)  # type: ignore[arg-type]
        self.base = base
        self.titles = titles
        self.item_noun = item_noun
        self.prompt_format = check_prompt_format(prompt_format)
        self.train_config = train_config or TrainConfig()
        self.batch_size = batch_size
        self.bf16_scoring = (
            self.train_config.bf16_autocast if bf16_scoring is None else bf16_scoring
        )
        self.cache = HiddenStateCache(max_bytes=cache_bytes)
        self.progress = progress
        self._peft: PeftModel | None = None
        self._cache_lower: dict[str, bool] = {}
        self.prefix_cache = PrefixKVCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        self._ranker = PrefixRanker(cache=self.prefix_cache)

    # ---- adapters -------------------------------------------------------------------------
    @property
    def adapter_names(self) -> list[str]:
        """Names of the adapters currently held."""
        return [] if self._peft is None else list(self._peft.peft_config)

    @property
    def model(self) -> torch.nn.Module:
        """The peft model (or the bare base model before the first adapter)."""
        return self.base.model if self._peft is None else self._peft

    def _require(self, name: str) -> PeftModel:
        """The peft model holding adapter ``name``."""
        if self._peft is None or name not in self._peft.peft_config:
            raise RecommenderError(f"unknown adapter {name!r}; have {self.adapter_names}")
        return self._peft

    def _config_of(self, name: str) -> LoraConfig:
        # every adapter is added by _add with a LoraConfig
        return cast(LoraConfig, self._require(name).peft_config[name])

    def adapter_config(self, name: str) -> LoraConfig:
        """A copy of the peft LoraConfig of adapter ``name``."""
        return copy.deepcopy(self._config_of(name))

    def _add(self, name: str, config: LoraConfig, *, cache_lower: bool = True) -> None:
        if not name or not isinstance(name, str):
            raise RecommenderError(f"adapter name must be a non-empty string, got {name!r}")
        if name in self.adapter_names:
            raise RecommenderError(f"adapter {name!r} already exists; delete_adapter it first")
        layers = config.layers_to_transform
        indices = [layers] if isinstance(layers, int) else layers
        total = num_layers(self.base.model)
        if indices is not None and any(not 0 <= int(i) < total for i in indices):
            raise RecommenderError(f"adapter {name!r}: layers {layers} outside 0..{total - 1}")
        if self._peft is None:
            self._peft = get_peft_model(self.base.model, config, adapter_name=name)
        else:
            self._peft.add_adapter(name, config)
        self._cache_lower[name] = cache_lower
        self._peft.eval()
        self._forget_prefixes()

    def delete_adapter(self, name: str) -> None:
        """Remove adapter ``name`` and its weights."""
        peft = self._require(name)
        if len(self.adapter_names) == 1:
            self.base.model = peft.unload()
            self._peft = None
        else:
            if name in peft.active_adapters:
                other = next(n for n in self.adapter_names if n != name)
                peft.set_adapter(other)
            peft.delete_adapter(name)
        self._cache_lower.pop(name, None)
        self._forget_prefixes()

    def _forget_prefixes(self) -> None:
        """Drop cached prefix keys/values: the adapters behind their names changed."""
        if self.prefix_cache is not None:
            self.prefix_cache.clear()

    def _start_layer(self, name: str) -> int:
        layers = self._config_of(name).layers_to_transform
        if layers is None or not self._cache_lower.get(name, True):
            return 0
        layers = [layers] if isinstance(layers, int) else layers
        return int(min(layers))

    def lora_state(self, name: str) -> dict[str, torch.Tensor]:
        """Adapter weights in peft's saved layout (adapter name stripped), detached copies."""
        state = get_peft_model_state_dict(self._require(name), adapter_name=name)
        return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}

    def set_lora_state(
        self, name: str, state: Mapping[str, torch.Tensor], config: TrainConfig | LoraConfig
    ) -> None:
        """Create (or replace) adapter ``name`` with ``config`` and load ``state`` into it."""
        lora_config = _lora_config(config)
        expected_suffixes = (".lora_A.weight", ".lora_B.weight")
        bad = [key for key in state if not key.endswith(expected_suffixes)]
        if bad:
            raise RecommenderError(f"adapter {name!r}: unexpected state keys {bad[:3]}")
        if name in self.adapter_names:
            self.delete_adapter(name)
        self._add(name, lora_config)
        result = set_peft_model_state_dict(self._peft, dict(state), adapter_name=name)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        own = get_peft_model_state_dict(self._peft, adapter_name=name)
        missing = sorted(set(own) - set(state))
        if unexpected or missing:
            self.delete_adapter(name)
            raise RecommenderError(
                f"adapter {name!r}: state does not fit config (unexpected {unexpected[:3]}, "
                f"missing {missing[:3]})"
            )

    # ---- training -------------------------------------------------------------------------
    def train_adapter(
        self,
        name: str,
        train: Sequence[Sample],
        validation: Sequence[Sample],
        *,
        init_from: str | None = None,
        config: TrainConfig | None = None,
    ) -> TrainReport:
        """Train a new adapter from scratch, or continue a copy of ``init_from`` (fine-tuning)."""
        config = config or self.train_config
        if name in self.adapter_names:
            raise RecommenderError(f"adapter {name!r} already exists; delete_adapter it first")
        if init_from is not None:
            self.set_lora_state(name, self.lora_state(init_from), self.adapter_config(init_from))
            self._cache_lower[name] = config.cache_lower_layers
        else:
            torch.manual_seed(config.seed)
            self._add(name, config.lora_config(), cache_lower=config.cache_lower_layers)
        peft = self._require(name)
        try:
            peft.set_adapter(name)
            report = train_lora(
                peft,
                name,
                self._encode(train),
                [s.label for s in train],
                self._encode(validation),
                [s.label for s in validation],
                config,
                cache=self.cache,
                start_layer=self._start_layer(name),
                progress=self.progress,
            )
        except BaseException:
            self.delete_adapter(name)
            raise
        for param in peft.parameters():
            param.requires_grad_(False)
        self._forget_prefixes()
        return report

    # ---- scoring --------------------------------------------------------------------------
    def _encode(self, samples: Sequence[Sample]) -> EncodedPrompts:
        prompts = [
            build_prompt(s, self.titles, self.item_noun, self.prompt_format, self.base.tokenizer)
            for s in samples
        ]
        return EncodedPrompts(self.base.tokenizer, prompts)

    @contextmanager
    def _active(self, name: str | None) -> Iterator[None]:
        if name is None:
            with self._peft.disable_adapter() if self._peft is not None else nullcontext():
                yield
        else:
            self._require(name).set_adapter(name)
            yield

    def score(self, name: str | None, samples: Sequence[Sample]) -> np.ndarray:
        """P(like) per sample with adapter ``name`` (``None`` = the base model alone)."""
        return self.score_many([name], samples)[name]

    def score_groups(
        self,
        names: Sequence[str | None],
        groups: Sequence[Sequence[Sample]],
        *,
        bf16: bool | None = None,
    ) -> list[dict[str | None, np.ndarray]]:
        """P(like) per adapter for each group of samples (one user and history per group).

        A group's prompts share their instruction + history prefix: on a Llama model it runs
        once and every adapter goes through one pass
        (:class:`~lsat.adapters.model.prefix_ranking.PrefixRanker`); other models fall back to
        :meth:`score_many` per group. ``bf16`` defaults to ``bf16_scoring``.
        """
        for name in names:
            if name is not None:
                self._require(name)
        bf16 = self.bf16_scoring if bf16 is None else bf16
        filled = [list(group) for group in groups if len(group)]
        if not filled:
            return [self.score_many(names, group, bf16=bf16) for group in groups]
        encoded = self._encode([s for group in filled for s in group])
        token_groups, start = [], 0
        for group in filled:
            token_groups.append(self._split(group, encoded.ids[start : start + len(group)]))
            start += len(group)
        answer_ids = answer_token_ids(self.base.tokenizer)
        try:
            ranked = self._ranker.score(
                self.model, token_groups, list(names), answer_ids, bf16=bf16
            )
        except RankingUnsupported:
            return [self.score_many(names, group, bf16=bf16) for group in groups]
        scored = iter(ranked)
        out = []
        for samples in groups:
            probs = next(scored) if len(samples) else np.empty((len(names), 0))
            out.append({name: probs[row] for row, name in enumerate(names)})
        return out

    def _split(self, samples: Sequence[Sample], ids: Sequence[Sequence[int]]) -> PromptGroup:
        """One group's prompts split into the shared prefix and each candidate's rest.

        With a prefix cache the split falls where the user's history ends whatever the
        candidates (so one user's requests share a cache entry, a lone prompt included): the
        common prefix of the prompts and two prompts of the first sample with made-up targets.
        """
        if self.prefix_cache is None:
            return split_shared_prefix(ids)
        probes = [dataclasses.replace(samples[0], item_id=item) for item in _PROBE_ITEMS]
        cut = len(split_shared_prefix([*self._encode(probes).ids, *ids]).prefix)
        return PromptGroup(tuple(ids[0][:cut]), tuple(tuple(t[cut:]) for t in ids))

    def score_many(
        self,
        names: Sequence[str | None],
        samples: Sequence[Sample],
        *,
        bf16: bool | None = None,
    ) -> dict[str | None, np.ndarray]:
        """P(like) per sample for several adapters; the frozen lower layers run once per batch.

        ``bf16`` defaults to ``bf16_scoring``.
        """
        for name in names:
            if name is not None:
                self._require(name)
        bf16 = self.bf16_scoring if bf16 is None else bf16
        encoded = self._encode(samples)
        if len(encoded) == 0:
            return {name: np.empty(0) for name in names}
        starts = [self._start_layer(n) for n in names if n is not None]
        start = min(starts) if starts and min(starts) > 0 else 0
        if len(names) == 1 or start == 0:
            out = {}
            for name in names:
                with self._active(name):
                    out[name] = score_prompts(
                        self.model,
                        encoded,
                        batch_size=self.batch_size,
                        start_layer=start,
                        cache=self.cache if start else None,
                        bf16=bf16,
                        progress=self.progress,
                    )
            return out
        out = {name: np.empty(len(encoded)) for name in names}
        batches = length_batches(encoded.lengths, self.batch_size)
        self.model.eval()
        for batch in tqdm(
            batches, desc="scoring", unit="batch", disable=not self.progress, leave=False
        ):
            for name in names:
                with self._active(name), torch.no_grad():
                    logits = batch_logits(
                        self.model,
                        encoded,
                        batch,
                        start_layer=start,
                        cache=self.cache,
                        bf16=bf16,
                    )
                out[name][batch] = torch.softmax(logits, dim=-1)[:, 0].double().cpu().numpy()
        return out

    # ---- combination and persistence (lsat.adapters.model.merging /
    # lsat.adapters.lifecycle.artifacts) ----------------
    def merge(
        self, new_name: str, names: Sequence[str], weights: Sequence[float], method: str = "delta"
    ) -> None:
        """Add ``new_name``, merging ``names``: "delta" (exact ΔW), "svd" or "ab_average"."""
        from lsat.adapters.model import merging

        adapters = [(self.lora_state(n), self.adapter_config(n)) for n in names]
        if method == "delta":
            state, config = merging.merge_delta(adapters, weights)
        elif method == "svd":
            state, config = merging.merge_svd(adapters, weights, rank=max(c.r for _, c in adapters))
        elif method in ("ab_average", "ab"):
            state, config = merging.merge_ab_average(adapters, weights)
        else:
            raise RecommenderError(f"unknown merge method {method!r}; use delta, svd or ab_average")
        self.set_lora_state(new_name, state, config)
