"""Item categories a worker learns from the store: an item the store had no category for is
asked again after ``CATEGORY_RETRY_S``, not in every batch (real SQLite store, fake clock)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from partitioned_cases import settings_for

from lsat.data.types import Interaction
from lsat.stream.catalogue import CATEGORY_RETRY_S
from lsat.stream.processor import StreamProcessor
from lsat.stream.replay import interaction_message
from lsat.stream.store import SampleStore, SourcePosition, StoreTransaction


def _interaction(offset: int) -> tuple[bytes, SourcePosition]:
    event = Interaction("u1", "m1", 880_000_000 + offset, 1, 5.0, f"e{offset}")
    return interaction_message(event), SourcePosition(0, offset, "interactions")


def test_a_category_stored_later_is_learned_after_the_retry_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(f"sqlite:///{tmp_path}/s.sqlite", tmp_path, 1)
    now = [900_000_000.0]  # after the events (a later one would be in the future)
    reader = StreamProcessor(settings, SampleStore(settings.db_url), clock=lambda: now[0])
    writer = StreamProcessor(settings, SampleStore(settings.db_url), clock=lambda: now[0])
    asked: list[set[str]] = []
    item_extras = StoreTransaction.item_extras

    def counted(tx: StoreTransaction, item_ids: Iterable[str]) -> dict[str, dict[str, object]]:
        wanted = set(item_ids)
        asked.append(wanted)
        return item_extras(tx, wanted)

    monkeypatch.setattr(StoreTransaction, "item_extras", counted)
    reader.on_interactions([_interaction(0)])  # m1 unknown: asked, no category yet
    now[0] += CATEGORY_RETRY_S / 2
    item = json.dumps({"item_id": "m1", "title": "M", "genres": ["Drama", "War"]}).encode()
    writer.on_item(item, SourcePosition(0, 0, "items"))  # another worker stores it
    reader.on_interactions([_interaction(1)])  # within the interval: not asked again
    assert "m1" not in reader.categories
    now[0] += CATEGORY_RETRY_S / 2
    reader.on_interactions([_interaction(2)])  # the interval passed: asked, learned
    assert reader.categories.get("m1") == "Drama"
    assert [a for a in asked if "m1" in a] == [{"m1"}, {"m1"}]
    assert reader.store.count_interactions() == 3
    reader.store.close()
    writer.store.close()
