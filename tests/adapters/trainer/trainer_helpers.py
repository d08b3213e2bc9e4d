"""Trainer test helpers: settings on the tiny Llama, a sample store holding toy windows."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from lsat.adapters.model.base_model import TINY_LLAMA
from lsat.core.settings import Settings
from lsat.data.collaborative import CollaborativeCounts
from lsat.data.types import Interaction, Item, Sample
from lsat.stream.store import IngestItem, SampleStore

TOY_TITLES = {str(i): f"{'Sunny' if i % 2 == 0 else 'Gloomy'} {i}" for i in range(40)}


def toy_samples(count: int, seed: int) -> list[Sample]:
    """Learnable toy samples: the target is liked iff its id is even ("Sunny")."""
    rng = random.Random(seed)
    out = []
    for k in range(count):
        history = tuple(str(rng.randrange(40)) for _ in range(rng.randrange(2, 6)))
        labels = tuple(int(int(h) % 2 == 0) for h in history)
        target = rng.randrange(40)
        sample = Sample(
            f"{seed}-{k}", f"u{k % 7}", str(target), k, int(target % 2 == 0), history, labels
        )
        out.append(sample)
    return out


def trainer_settings(tmp_path: Path, db_url: str, **trainer: object) -> Settings:
    """Settings for a fast trainer on the tiny model (1 epoch, top 2 layers)."""
    base = Settings(home=tmp_path / "home", database_url=db_url, base_model=TINY_LLAMA)
    knobs = {"epochs": 1, "layers": 2, "batch_size": 8, "merge": True, **trainer}
    return replace(base, trainer=replace(base.trainer, **knobs))


def fill_windows(db_url: str, windows: dict[int, int], *, annotate: bool = False) -> None:
    """Store toy samples in the given ``{window_id: count}`` windows (time ordered); with
    ``annotate`` each carries the like counts of the samples before it (as the stream does)."""
    store = SampleStore(db_url)
    counts = CollaborativeCounts(co_like_window=0)
    try:
        for item_id, title in TOY_TITLES.items():
            store.upsert_item(Item(item_id, title))
        ts = 0
        for window_id, count in windows.items():
            items = []
            for sample in toy_samples(count, seed=window_id):
                ts += 1
                s = replace(sample, event_id=f"w{window_id}-{sample.event_id}", timestamp=ts)
                if annotate:
                    features = counts.observe(s.user_id, s.item_id, s.label)
                    s = replace(s, collaborative=features)
                interaction = Interaction(s.user_id, s.item_id, ts, s.label, event_id=s.event_id)
                items.append(IngestItem(interaction, s, window_id=window_id))
            store.ingest_many(items)
    finally:
        store.close()
