"""The trainer parent's scoring model: one base LM, registered adapters loaded verified, titles.

The parent never trains (that happens in :mod:`.child`); it scores windows and validation
tails. :class:`AdapterPool` loads the base model on first use and each registered version once,
after checking its folder against the registry (sha256, finite weights), and prompts every
adapter the way it was trained (:mod:`lsat.adapters.lifecycle.adapter_prompt`).
:class:`TitleCache` reads the item catalogue only when a sample names an item it has not seen
yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from lsat.adapters.lifecycle.adapter_prompt import AdapterPrompt, prompt_of
from lsat.adapters.lifecycle.artifacts import LoadedAdapter, load_adapter
from lsat.adapters.lifecycle.registry import AdapterVersion
from lsat.adapters.model.base_model import BaseLM
from lsat.adapters.model.precision import resolve_bf16
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.scoring import model_device
from lsat.adapters.trainer.helpers import adapter_name
from lsat.data.types import Item, Sample

__all__ = ["AdapterPool", "TitleCache", "load_verified"]


def load_verified(version: AdapterVersion) -> LoadedAdapter:
    """Read a registered version's folder; refuse it unless its sha256 is the registry's.

    Raises :class:`AdapterIntegrityError` (or another
    :class:`lsat.adapters.model.errors.AdapterArtifactError`) naming both hashes.
    """
    return load_adapter(Path(version.path), expected_sha256=version.sha256)


class TitleCache:
    """Item titles by id, re-read from ``catalogue`` only when an unknown item shows up."""

    def __init__(self, catalogue: Callable[[], Mapping[str, Item]]) -> None:
        self._catalogue = catalogue
        self._titles: dict[str, str] = {}
        self.catalogue_reads = 0

    def titles_for(self, samples: Sequence[Sample]) -> dict[str, str]:
        """Titles covering every target and history item of ``samples`` (as far as known)."""
        needed = {s.item_id for s in samples} | {i for s in samples for i in s.history_item_ids}
        if not needed <= self._titles.keys():
            self._titles = {i: item.title for i, item in self._catalogue().items()}
            self.catalogue_reads += 1
        return self._titles


class AdapterPool:
    """A :class:`LoraRecommender` on the base model, holding named adapters for scoring."""

    def __init__(
        self, load_base: Callable[[], BaseLM], titles: TitleCache, *, bf16: bool | None = None
    ) -> None:
        self._load_base = load_base
        self.titles = titles
        self.bf16 = bf16
        self._recommender: LoraRecommender | None = None
        self._prompts: dict[str, AdapterPrompt] = {}

    @property
    def recommender(self) -> LoraRecommender:
        """The scoring model (the base LM is loaded on first use; it scores in bf16 where the
        hardware computes bf16 natively, unless ``bf16`` says otherwise)."""
        if self._recommender is None:
            base = self._load_base()
            bf16 = resolve_bf16(self.bf16, model_device(base.model))
            self._recommender = LoraRecommender(base, {}, progress=False, bf16_scoring=bf16)
        return self._recommender

    def use_titles_for(self, samples: Sequence[Sample]) -> None:
        """Make the recommender's prompts know every item of ``samples``."""
        self.recommender.titles = self.titles.titles_for(samples)

    def loaded(self, version: AdapterVersion) -> str:
        """Load a registered version (verified, once) and return its name in the recommender."""
        name = adapter_name(version)
        if name not in self.recommender.adapter_names:
            self.put(name, load_verified(version))
        return name

    def put(self, name: str, adapter: LoadedAdapter) -> str:
        """Hold ``adapter`` under ``name`` (replacing one of that name); returns ``name``."""
        prompt = prompt_of(adapter.metadata)
        self.recommender.set_lora_state(name, adapter.state, adapter.config)
        self._prompts[name] = prompt
        return name

    def drop(self, name: str) -> None:
        """Forget the adapter called ``name``."""
        self.recommender.delete_adapter(name)
        self._prompts.pop(name, None)

    def prompt(self, name: str) -> AdapterPrompt:
        """The prompt adapter ``name`` was trained with."""
        return self._prompts.get(name, AdapterPrompt())

    def use_prompt(self, prompt: AdapterPrompt) -> None:
        """Make the recommender build ``prompt``'s prompts (for direct recommender calls)."""
        self.recommender.prompt_format = prompt.prompt_format
        self.recommender.item_noun = prompt.item_noun

    def score_many(self, names: Sequence[str], samples: Sequence[Sample]) -> dict[str, np.ndarray]:
        """P(like) per sample for each adapter, each prompted the way it was trained (adapters
        sharing a prompt share their forward passes)."""
        groups: dict[AdapterPrompt, list[str]] = {}
        for name in names:
            groups.setdefault(self.prompt(name), []).append(name)
        out: dict[str, np.ndarray] = {}
        for prompt, group in groups.items():
            self.use_prompt(prompt)
            scored = self.recommender.score_many(list(group), list(samples))
            out.update({name: scored[name] for name in group})
        return out
