"""SampleStore on SQLite and PostgreSQL: idempotent ingest, window bookkeeping, queries."""

from __future__ import annotations

import pytest

from lsat.data.types import Interaction, Item, Sample
from lsat.stream.store import (
    DeadLetterRecord,
    IngestItem,
    SampleStore,
    SourcePosition,
    WindowClosure,
)


def _item(user: str, item: str, ts: int, window: int | None = 1, full: bool = True) -> IngestItem:
    interaction = Interaction(user, item, ts, label=ts % 2, rating=4.0)
    sample = Sample(interaction.key(), user, item, ts, ts % 2, ("a", "b"), (1, 0)) if full else None
    return IngestItem(interaction, sample, window_id=window, source=SourcePosition(0, ts))


@pytest.fixture
def store(db_url: str) -> SampleStore:
    s = SampleStore(db_url)
    yield s
    s.close()


def test_ingest_is_idempotent_and_counts_window_once(store: SampleStore) -> None:
    assert store.ingest(_item("u1", "i1", 100)) is True
    assert store.ingest(_item("u1", "i1", 100)) is False
    assert store.ingest_many([_item("u1", "i2", 90), _item("u1", "i1", 100)]) == [True, False]
    window = store.window(1)
    assert window is not None
    assert (window.count, window.start_ts, window.end_ts, window.status) == (2, 90, 100, "open")
    assert store.count_samples() == 2
    assert store.count_interactions() == 2


def test_interaction_without_sample_feeds_history_only(store: SampleStore) -> None:
    store.ingest_many([_item("u1", f"i{n}", 10 + n, window=None, full=False) for n in range(5)])
    store.ingest(_item("u2", "x", 1, window=None, full=False))
    assert store.count_samples() == 0
    history = store.recent_interactions(per_user=3)
    assert [i.item_id for i in history["u1"]] == ["i2", "i3", "i4"]
    assert [i.item_id for i in history["u2"]] == ["x"]


def test_window_samples_ordered_by_event_time_and_round_trip(store: SampleStore) -> None:
    store.ingest_many([_item("u1", "late", 300), _item("u2", "early", 100)])
    store.ingest(_item("u3", "other", 50, window=2))
    samples = store.window_samples(1)
    assert [s.item_id for s in samples] == ["early", "late"]
    assert samples[0] == Sample("u2:early:100", "u2", "early", 100, 0, ("a", "b"), (1, 0))
    assert [s.item_id for s in store.samples_between(0, 200)] == ["other", "early"]


def test_close_window_is_idempotent_and_listed(store: SampleStore) -> None:
    store.open_window(1, start_ts=5)
    store.ingest(_item("u1", "i1", 10))
    first = store.close_window(1, "count", {"ph": 0.5}, end_ts=12)
    again = store.close_window(1, "drift")
    assert first.trigger == again.trigger == "count"
    assert again.drift_stats == {"ph": 0.5} and again.end_ts == 12 and again.count == 1
    store.open_window(2)
    assert [w.id for w in store.open_windows()] == [2]
    assert [w.id for w in store.last_closed_windows(5)] == [1]
    assert [w.id for w in store.unpublished_closed_windows()] == [1]
    store.mark_retrain_published(1)
    assert store.unpublished_closed_windows() == []
    assert store.last_closed_windows(1)[0].retrain_published


def test_dead_letters_are_idempotent_by_source(store: SampleStore) -> None:
    record = DeadLetterRecord("bad_json", "Expecting value", "{", SourcePosition(1, 7, "t"))
    assert store.add_dead_letter(record) is True
    assert store.add_dead_letter(record) is False
    assert store.dead_letters() == [record]


def test_schema_survives_reopen(db_url: str) -> None:
    first = SampleStore(db_url)
    first.ingest(_item("u1", "i1", 100))
    first.close()
    second = SampleStore(db_url)
    assert second.ingest(_item("u1", "i1", 100)) is False
    assert second.count_samples() == 1
    second.close()


def test_commit_event_writes_state_and_closures_only_when_new(store: SampleStore) -> None:
    closure = WindowClosure(1, "full", end_ts=100, drift_stats={"x": 1.0})
    assert store.commit_event(_item("u1", "i1", 100), {"window": {"id": 2}}, [closure]) is True
    assert store.load_state("window") == {"id": 2}
    closed = store.window(1)
    assert closed is not None and (closed.status, closed.trigger, closed.count) == (
        "closed",
        "full",
        1,
    )
    again = store.commit_event(_item("u1", "i1", 100), {"window": {"id": 99}}, [])
    assert again is False
    assert store.load_state("window") == {"id": 2}


def test_catalogue_upsert(store: SampleStore) -> None:
    store.upsert_item(Item("7", "Old", {"year": "1990"}))
    store.upsert_item(Item("7", "New"))
    store.upsert_item(Item("8", "Other"))
    catalogue = store.catalogue()
    assert (catalogue["7"].title, catalogue["7"].extra, len(catalogue)) == ("New", {}, 2)
