"""The trainer parent's scoring model: one base LM, registered adapters loaded verified, titles.

The parent never trains (that happens in :mod:`.child`); it scores windows and validation
tails. :class:`AdapterPool` loads the base model on first use and each registered version once,
after checking its folder against the registry (sha256, finite weights). :class:`TitleCache`
reads the item catalogue only when a sample names an item it has not seen yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lsat.adapters.lifecycle.artifacts import LoadedAdapter, load_adapter
from lsat.adapters.lifecycle.registry import AdapterVersion
from lsat.adapters.model.base_model import BaseLM
from lsat.adapters.model.recommender import LoraRecommender
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

    def __init__(self, load_base: Callable[[], BaseLM], titles: TitleCache) -> None:
        self._load_base = load_base
        self.titles = titles
        self._recommender: LoraRecommender | None = None

    @property
    def recommender(self) -> LoraRecommender:
        """The scoring model (the base LM is loaded on first use)."""
        if self._recommender is None:
            self._recommender = LoraRecommender(self._load_base(), {}, progress=False)
        return self._recommender

    def use_titles_for(self, samples: Sequence[Sample]) -> None:
        """Make the recommender's prompts know every item of ``samples``."""
        self.recommender.titles = self.titles.titles_for(samples)

    def loaded(self, version: AdapterVersion) -> str:
        """Load a registered version (verified, once) and return its name in the recommender."""
        name = adapter_name(version)
        if name not in self.recommender.adapter_names:
            loaded = load_verified(version)
            self.recommender.set_lora_state(name, loaded.state, loaded.config)
        return name

    def put(self, name: str, adapter: LoadedAdapter) -> str:
        """Hold ``adapter`` under ``name`` (replacing one of that name); returns ``name``."""
        self.recommender.set_lora_state(name, adapter.state, adapter.config)
        return name

    def drop(self, name: str) -> None:
        """Forget the adapter called ``name``."""
        self.recommender.delete_adapter(name)
