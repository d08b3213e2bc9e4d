"""Like counts in the stream: every stored sample carries the counts as of just before its
event, the count tables equal the stored interactions', exactly once (re-deliveries, duplicates
in a batch, failed batches, a crash mid-batch), on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from worker_cases import feed, stream_settings

from lsat.data.collaborative import CollaborativeCounts, build_annotated_samples
from lsat.data.loaders import load_dataset
from lsat.data.types import CollaborativeFeatures, Interaction, Sample
from lsat.stream.isolation import StoreUnavailable
from lsat.stream.processor import StreamProcessor
from lsat.stream.replay import interaction_message
from lsat.stream.store import SampleStore, SourcePosition
from lsat.stream.store.models import InteractionRow

N_EVENTS = 3000
ALL_TIME = (0, 2**62)


@pytest.fixture(scope="module")
def events(ml100k_dir: Path) -> list[Interaction]:
    return load_dataset(ml100k_dir).interactions[:N_EVENTS]


def features(store: SampleStore) -> dict[str, CollaborativeFeatures | None]:
    return {s.event_id: s.collaborative for s in store.samples_between(*ALL_TIME)}


def reference(events: list[Interaction]) -> dict[str, CollaborativeFeatures | None]:
    """lsat.data.collaborative's prequential annotation of the same time-ordered events."""
    samples = build_annotated_samples(events, counts=CollaborativeCounts(co_like_window=0))
    return {s.event_id: s.collaborative for s in samples}


def table_counts(store: SampleStore) -> dict[str, object]:
    """The three count tables as plain data."""
    with store.engine.connect() as conn:
        users = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT * FROM user_like_counts"))}
        items = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT * FROM item_like_counts"))}
        totals = conn.execute(text("SELECT name, likes, count FROM like_count_totals")).all()
    return {"users": users, "items": items, "totals": [tuple(t) for t in totals]}


def interaction_counts(store: SampleStore) -> dict[str, object]:
    """The same counts aggregated from the stored interactions."""
    rows = InteractionRow
    with store.engine.connect() as conn:
        per = {}
        for key in ("user_id", "item_id"):
            column = getattr(rows, key)
            query = select(column, func.sum(rows.label), func.count()).group_by(column)
            per[key] = {k: (int(likes), int(n)) for k, likes, n in conn.execute(query)}
        likes, n = conn.execute(select(func.sum(rows.label), func.count())).one()
    return {"users": per["user_id"], "items": per["item_id"], "totals": [("global", likes, n)]}


def test_stored_features_are_the_prequential_annotation(
    db_url: str, tmp_path: Path, events: list[Interaction]
) -> None:
    store = SampleStore(db_url)
    processor = StreamProcessor(stream_settings(tmp_path, db_url), store)
    feed(processor, events, 0, batch=250)
    stored = features(store)
    assert stored == reference(events)
    assert len(stored) > 1000 and all(f is not None for f in stored.values())
    assert table_counts(store) == interaction_counts(store)
    # the worker's cache, the tables and the live read agree with counts over every event
    everything = CollaborativeCounts(co_like_window=0)
    for it in events:
        everything.learn_one(it.user_id, it.item_id, it.label)
    assert store.like_counts().to_state() == everything.to_state()
    assert processor.counts.to_state() == everything.to_state()
    user = events[-1].user_id
    items = [events[0].item_id, events[-1].item_id, "no-such-item"]
    live = store.collaborative_features(user, items)
    assert live == {i: everything.features_before(user, i) for i in items}
    assert live["no-such-item"].item_count == 0 and live[items[0]].item_count > 0
    store.close()


def test_no_feature_counts_its_own_or_a_later_event(
    tmp_path: Path, events: list[Interaction]
) -> None:
    """Counted from scratch, per sample, over the events strictly before it."""
    db_url = f"sqlite:///{tmp_path / 'lsat.sqlite'}"
    store = SampleStore(db_url)
    feed(StreamProcessor(stream_settings(tmp_path, db_url), store), events, 0, batch=400)
    position = {it.key(): n for n, it in enumerate(events)}
    samples: list[Sample] = store.samples_between(*ALL_TIME)
    checked = 0
    for sample in samples[::25]:
        before = events[: position[sample.event_id]]
        f = sample.collaborative
        assert f is not None
        user = [it.label for it in before if it.user_id == sample.user_id]
        item = [it.label for it in before if it.item_id == sample.item_id]
        assert (f.user_likes, f.user_count) == (sum(user), len(user)), sample
        assert (f.item_likes, f.item_count) == (sum(item), len(item)), sample
        assert (f.global_likes, f.global_count) == (sum(it.label for it in before), len(before))
        checked += 1
    assert checked > 40
    store.close()


def messages(events: list[Interaction], first_offset: int) -> list[tuple[bytes, SourcePosition]]:
    return [
        (interaction_message(it), SourcePosition(0, first_offset + n, "interactions"))
        for n, it in enumerate(events)
    ]


def test_redeliveries_and_duplicates_are_counted_once(
    db_url: str, tmp_path: Path, events: list[Interaction]
) -> None:
    settings = stream_settings(tmp_path, db_url)
    store = SampleStore(db_url)
    first = StreamProcessor(settings, store)
    records = messages(events, 0)
    first.on_interactions(records[:1200])
    # the same messages twice within one batch, and a batch delivered twice
    batch = records[1200:1500]
    first.on_interactions([r for pair in zip(batch, batch, strict=True) for r in pair])
    first.on_interactions(records[1200:1500])
    # restart: a new processor gets offsets from 1000 again
    second = StreamProcessor(settings, SampleStore(db_url))
    for start in range(1000, len(records), 300):
        second.on_interactions(records[start : start + 300])
    assert features(store) == reference(events)
    assert table_counts(store) == interaction_counts(store)
    assert store.like_counts().global_count == len(events) == store.count_interactions()
    assert second.counts.to_state() == store.like_counts().to_state()
    store.close()


class FailingStore(SampleStore):
    """A real store whose batch transaction fails after its interactions, samples and counts
    were written (at the pipeline state): ``fail`` says how."""

    fail: str = ""  # "" | "store" (the database went away) | "crash" (the process dies)

    @contextlib.contextmanager
    def transaction(self) -> Iterator:  # type: ignore[override]
        with super().transaction() as tx:
            put_state = tx.put_state

            def failing(name, data) -> None:  # type: ignore[no-untyped-def]
                if self.fail == "store":
                    raise OperationalError("UPDATE", {}, ConnectionError("server closed"))
                if self.fail == "crash":
                    raise KeyboardInterrupt("killed mid-batch")  # not handled by the processor
                put_state(name, data)

            tx.put_state = failing  # type: ignore[method-assign]
            yield tx


def test_failed_and_crashed_batches_leave_the_counts_of_a_clean_run(
    db_url: str, tmp_path: Path, events: list[Interaction]
) -> None:
    settings = stream_settings(tmp_path, db_url)
    store = FailingStore(db_url)
    processor = StreamProcessor(settings, store)
    records = messages(events, 0)
    processor.on_interactions(records[:1000])
    store.fail = "store"  # rolled back; the processor reloads its cache, the batch is retried
    with pytest.raises(StoreUnavailable):
        processor.on_interactions(records[1000:1500])
    assert store.like_counts().global_count == 1000
    assert processor.counts.to_state() == store.like_counts().to_state()
    store.fail = ""
    processor.on_interactions(records[1000:1500])
    store.fail = "crash"  # the process dies inside the transaction: nothing of it commits
    with pytest.raises(KeyboardInterrupt):
        processor.on_interactions(records[1500:2000])
    store.fail = ""
    restarted = StreamProcessor(settings, FailingStore(db_url))
    assert restarted.counts.global_count == 1500
    for start in range(1500, len(records), 500):
        restarted.on_interactions(records[start : start + 500])
    assert features(store) == reference(events)
    assert table_counts(store) == interaction_counts(store)
    store.close()


def test_a_store_from_before_the_counts_is_backfilled(
    db_url: str, tmp_path: Path, events: list[Interaction]
) -> None:
    store = SampleStore(db_url)
    feed(StreamProcessor(stream_settings(tmp_path, db_url), store), events[:800], 0, batch=400)
    with store.engine.begin() as conn:  # an old store: no count tables (nor migrations) yet
        for table in ("user_like_counts", "item_like_counts", "like_count_totals"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("DROP TABLE IF EXISTS alembic_version_stream"))
    store.close()
    upgraded = SampleStore(db_url)
    assert table_counts(upgraded) == interaction_counts(upgraded)
    again = SampleStore(db_url)  # a second open fills nothing twice
    assert table_counts(again) == interaction_counts(again)
    feed(StreamProcessor(stream_settings(tmp_path, db_url), again), events[800:], 800, batch=400)
    assert table_counts(again) == interaction_counts(again)
    counted = Counter(it.item_id for it in events)
    assert {k: n for k, (_, n) in table_counts(again)["items"].items()} == dict(counted)
    upgraded.close()
    again.close()


def test_samples_without_counts_read_back_without_features(tmp_path: Path) -> None:
    from lsat.stream.store import IngestItem

    store = SampleStore(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    it = Interaction("u", "i", 100, 1)
    sample = Sample(it.key(), "u", "i", 100, 1, ("a",), (0,))
    assert store.ingest(IngestItem(it, sample, window_id=0))
    assert [s.collaborative for s in store.window_samples(0)] == [None]
    assert store.collaborative_features("u", ["i"])["i"] == CollaborativeFeatures(1, 1, 1, 1, 1, 1)
    store.close()


def test_live_candidates_carry_what_the_stream_stores_for_that_event_next(
    db_url: str, tmp_path: Path, events: list[Interaction]
) -> None:
    store = SampleStore(db_url)
    processor = StreamProcessor(stream_settings(tmp_path, db_url), store)
    records = messages(events, 0)
    checked, done = 0, 0
    for cut in range(1000, len(events), 500):
        processor.on_interactions(records[done:cut])
        nxt = events[cut]
        live = store.candidate_samples(nxt.user_id, [nxt.item_id, "unseen"], timestamp=1)
        processor.on_interactions(records[cut : cut + 1])
        done = cut + 1
        stored = [s for s in store.samples_between(*ALL_TIME) if s.event_id == nxt.key()]
        if stored:  # the user already had a full history
            assert live[0].collaborative == stored[0].collaborative
            assert live[0].history_item_ids == stored[0].history_item_ids
            assert live[0].history_labels == stored[0].history_labels
            checked += 1
        assert live[1].collaborative is not None and live[1].collaborative.item_count == 0
    assert checked >= 2
    store.close()
