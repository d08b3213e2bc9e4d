"""Poison records never take their batch with them: every offset ends stored, dead-lettered
or a counted duplicate, exactly once.

The pure processor (real SQLite / PostgreSQL store, no broker) gets every poison class and a
seeded 5,000-record fuzz; the real worker process on the real tansu broker gets a smaller mix on
the ``interactions`` and ``items`` topics (see also tests/stream/test_slow_store.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from poison_cases import (
    ITEM_POISON,
    NOW_S,
    Case,
    conflicting,
    event_json,
    expected_keys,
    fuzz_interactions,
    poison_interactions,
    same_content,
    valid_events,
    valid_items,
)
from sqlalchemy import text
from worker_cases import pure_reference, stored_samples, stream_settings
from worker_process import (
    counter,
    private_broker,
    produce,
    running_worker,
    scrape,
    wait_for,
    worker_env,
)

from lsat.stream.broker import free_port
from lsat.stream.dead_letter import DLQ_RECORD_BYTES, DeadLetter
from lsat.stream.isolation import Handled, StoreUnavailable
from lsat.stream.processor import StreamProcessor
from lsat.stream.store import SampleStore, SourcePosition

KAFKA_MAX_MESSAGE_BYTES = 1_048_588
"""Kafka's default ``message.max.bytes``: a DLQ record must stay below it."""
TOPIC = "interactions"


def make(tmp_path: Path, store: SampleStore) -> StreamProcessor:
    settings = stream_settings(tmp_path, store.engine.url.render_as_string(False))
    return StreamProcessor(settings, store, clock=lambda: NOW_S)


def feed(
    processor: StreamProcessor, cases: Sequence[Case], batch: int, items: bool = False
) -> Handled:
    topic = "items" if items else TOPIC
    records = [(c.raw, SourcePosition(0, n, topic)) for n, c in enumerate(cases)]
    handle = processor.handle_items if items else processor.handle_interactions
    handled = Handled()
    for start in range(0, len(records), batch):
        handled.extend(handle(records[start : start + batch]))
    return handled


def outcome_of(case: Case) -> tuple[str, str]:
    if case.expect in ("stored", "duplicate"):
        return case.expect, ""
    return "dead_lettered", case.expect


def stored_offsets(store: SampleStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, source_offset FROM stream_interactions"))
        return dict(rows.all())


def check_every_offset(
    cases: Sequence[Case], handled: Handled, processor: StreamProcessor, items: bool = False
) -> None:
    """The invariant, offset by offset, against the processor's outcomes, the store's rows,
    the DLQ messages and the counters."""
    store, topic = processor.store, "items" if items else TOPIC
    assert [o.source for o in handled.outcomes] == [
        SourcePosition(0, n, topic) for n in range(len(cases))
    ]
    got = [(o.outcome, o.reason) for o in handled.outcomes]
    assert got == [outcome_of(c) for c in cases]
    dead = {n: c.expect for n, c in enumerate(cases) if outcome_of(c)[0] == "dead_lettered"}
    rows = {d.source.offset: d.reason for d in store.dead_letters() if d.source is not None}
    assert rows == dead
    letters = [DeadLetter.from_json(m.value) for m in handled.outgoing if m.topic.endswith("dlq")]
    assert {d.offset: d.reason_code for d in letters} == dead
    assert max(len(m.value) for m in handled.outgoing) <= DLQ_RECORD_BYTES
    for letter in letters:
        raw = cases[letter.offset].raw
        assert letter.payload_size == len(raw or b"")
        assert letter.payload_sha256 == ("" if raw is None else hashlib.sha256(raw).hexdigest())
        assert letter.payload == (None if raw is None else raw[: len(letter.payload or b"")])
    tally = Counter(outcome for outcome, _ in got)
    assert counted(processor, items) == {
        "stored": tally["stored"],
        "dlq": tally["dead_lettered"],
        "duplicate": tally["duplicate"],
    }
    reasons = Counter(dead.values())
    dead_letters = processor.metrics.dead_letters
    assert {r: dead_letters.labels(reason=r)._value.get() for r in reasons} == reasons
    if not items:
        first = {}
        for n, case in enumerate(cases):
            if case.expect == "stored":
                first[expected_keys([case])[0].key()] = n
        assert stored_offsets(store) == first


def counted(processor: StreamProcessor, items: bool) -> dict[str, float]:
    """The outcome counters: stored (ok + late), dlq, duplicate."""
    metric = processor.metrics.items if items else processor.metrics.events
    value = {s: metric.labels(status=s)._value.get() for s in ("ok", "dlq", "duplicate")}
    late = 0.0 if items else metric.labels(status="late")._value.get()
    return {"stored": value["ok"] + late, "dlq": value["dlq"], "duplicate": value["duplicate"]}


@pytest.fixture
def store(db_url: str) -> Iterator[SampleStore]:
    s = SampleStore(db_url)
    yield s
    s.close()


# --- the pure processor ------------------------------------------------------------------------


def test_every_poison_class_is_dead_lettered_with_its_reason(
    tmp_path: Path, store: SampleStore
) -> None:
    good = [Case(raw, b"k", "stored") for raw in valid_events(random.Random(1), 10)]
    poison = poison_interactions(size_mb=5)
    again = [Case(good[0].raw, b"k", "duplicate"), Case(good[1].raw, None, "duplicate")]
    cases = [*good[:5], *poison, *good[5:], *again]
    processor = make(tmp_path, store)
    handled = feed(processor, cases, batch=len(cases))
    check_every_offset(cases, handled, processor)
    assert len(poison) == sum(o.outcome == "dead_lettered" for o in handled.outcomes)


def test_conflicting_duplicate_carries_both_hashes(tmp_path: Path, store: SampleStore) -> None:
    first = event_json("u1", "i1", 880_000_000, 4, "e-1")
    exact = event_json("u1", "i1", 880_000_000, 4, "e-1")
    other = event_json("u1", "i1", 880_000_000, 2, "e-1")
    derived = event_json("u2", "i2", 880_000_001, 5)
    derived_other = event_json("u2", "i2", 880_000_001, 1)
    cases = [
        Case(first, None, "stored"),
        Case(exact, None, "duplicate"),
        Case(other, None, "conflicting_duplicate"),  # same batch as the first
        Case(derived, None, "stored"),
    ]
    processor = make(tmp_path, store)
    handled = feed(processor, cases, batch=4)
    # a later batch: the stored copy is found in the store
    later = processor.handle_interactions([(derived_other, SourcePosition(0, 4, TOPIC))])
    handled.extend(later)
    cases.append(Case(derived_other, None, "conflicting_duplicate"))
    check_every_offset(cases, handled, processor)
    letters = [DeadLetter.from_json(m.value) for m in handled.outgoing]
    assert [dict(d.context) for d in letters] == [
        {
            "event_id": "e-1",
            "stored_payload_sha256": hashlib.sha256(first).hexdigest(),
            "payload_sha256": hashlib.sha256(other).hexdigest(),
            "stored_offset": "0:0",
        },
        {
            "event_id": "u2:i2:880000001",
            "stored_payload_sha256": hashlib.sha256(derived).hexdigest(),
            "payload_sha256": hashlib.sha256(derived_other).hexdigest(),
            "stored_offset": "0:3",
        },
    ]
    assert "rating 4.0 → 2.0" in letters[0].detail


def test_fuzz_5000_records_every_offset_ends_exactly_once(
    tmp_path: Path, store: SampleStore
) -> None:
    cases = fuzz_interactions(seed=20_261_130, n=5000)
    assert {c.expect for c in cases} >= {
        "stored",
        "duplicate",
        "conflicting_duplicate",
        "null_value",
        "invalid_unicode",
        "not_utf8",
        "too_large",
        "bad_id_chars",
    }
    processor = make(tmp_path, store)
    handled = feed(processor, cases, batch=250)
    check_every_offset(cases, handled, processor)
    # the samples are those of the pure pipeline over the stored events alone
    settings = stream_settings(tmp_path, "sqlite://")
    samples, _, _ = pure_reference(settings, expected_keys(cases))
    assert stored_samples(store) == samples


class PoisonedStore(SampleStore):
    """A real store whose writes fail for users named ``poison*`` (a record-level bug), or for
    everything while ``down`` (the database is gone)."""

    down = False

    @contextlib.contextmanager
    def transaction(self):  # type: ignore[override]
        from sqlalchemy.exc import OperationalError

        with super().transaction() as tx:
            add_events = tx.add_events

            def poisoned(items) -> None:  # type: ignore[no-untyped-def]
                if self.down:
                    raise OperationalError("INSERT", {}, ConnectionError("server closed"))
                for item in items:
                    if item.interaction.user_id.startswith("poison"):
                        raise RuntimeError(f"cannot store {item.interaction.key()}")
                add_events(items)

            tx.add_events = poisoned  # type: ignore[method-assign]
            yield tx


def test_a_record_failing_after_validation_is_dead_lettered_alone(
    tmp_path: Path, db_url: str
) -> None:
    store = PoisonedStore(db_url)
    cases = fuzz_interactions(seed=7, n=700)
    for n in (17, 18, 400, 401, 402, 650):  # valid to validation, fatal to the store
        poison = event_json(f"poison{n}", "i1", 880_000_000, 4)
        cases.insert(n, Case(poison, b"p", "internal_error:RuntimeError"))
    processor = make(tmp_path, store)
    handled = feed(processor, cases, batch=100)
    check_every_offset(cases, handled, processor)
    settings = stream_settings(tmp_path, "sqlite://")
    samples, _, _ = pure_reference(settings, expected_keys(cases))
    assert stored_samples(store) == samples
    # re-delivered: the same outcome, sent again, no new row
    again = feed(processor, cases[:100], batch=100)
    assert {o.outcome for o in again.outcomes} == {"duplicate"}
    store.close()


def test_a_failing_store_dead_letters_nothing_and_the_retry_stores_all(
    tmp_path: Path, db_url: str
) -> None:
    store = PoisonedStore(db_url)
    cases = fuzz_interactions(seed=3, n=400)
    processor = make(tmp_path, store)
    first = feed(processor, cases[:200], batch=200)
    store.down = True
    records = [(c.raw, SourcePosition(0, 200 + n, TOPIC)) for n, c in enumerate(cases[200:])]
    with pytest.raises(StoreUnavailable):
        processor.handle_interactions(records)
    assert processor.metrics.store_failures._value.get() >= 1
    assert len(store.dead_letters()) == sum(o.outcome == "dead_lettered" for o in first.outcomes)
    store.down = False
    handled = first.extend(processor.handle_interactions(records))
    check_every_offset(cases, handled, processor)
    store.close()


# --- items ---------------------------------------------------------------------------------------


def test_items_poison_is_dead_lettered_and_the_catalogue_keeps_the_rest(
    tmp_path: Path, store: SampleStore
) -> None:
    good = valid_items(6)
    cases = [good[0], *ITEM_POISON[:4], good[1], good[1], *ITEM_POISON[4:], *good[2:]]
    cases[6] = Case(good[1].raw, None, "stored")  # an upsert again: stored (latest wins)
    processor = make(tmp_path, store)
    handled = feed(processor, cases, batch=len(cases), items=True)
    check_every_offset(cases, handled, processor, items=True)
    assert sorted(store.catalogue()) == [f"c{k}" for k in range(6)]
    assert processor.categories["c3"] == "Drama"


# --- the real worker on the real broker ----------------------------------------------------------


def keyed(cases: list[Case]) -> list[Case]:
    """Valid events and their repeats keyed by user id (as producers do)."""
    out = []
    for case in cases:
        if case.expect in ("stored", "duplicate", "conflicting_duplicate"):
            user = json.loads(case.raw or b"{}")["user_id"]
            case = Case(case.raw, str(user).encode(), case.expect, case.kind)
        out.append(case)
    return out


@pytest.mark.kafka
@pytest.mark.slow
def test_real_worker_survives_poison_on_both_topics(tmp_path: Path, consume) -> None:
    rng = random.Random(11)
    valid = [Case(raw, None, "stored") for raw in valid_events(rng, 120)]
    repeats = [
        Case(valid[3].raw, None, "duplicate"),
        Case(same_content(valid[4].raw or b""), None, "duplicate"),
        Case(conflicting(valid[5].raw or b""), None, "conflicting_duplicate"),
        Case(conflicting(valid[70].raw or b""), None, "conflicting_duplicate"),
    ]
    interactions = keyed([*valid[:60], *poison_interactions(5), *valid[60:], *repeats])
    items = [*valid_items(6)[:2], *ITEM_POISON, *valid_items(6)[2:]]
    last = Case(event_json("late-user", "i1", 880_000_000, 5), b"late-user", "stored")
    db_url = f"sqlite:///{tmp_path / 'lsat.sqlite'}"
    metrics_port = free_port()
    with private_broker(tmp_path) as kafka:
        sent = {
            topic: produce(kafka, [(topic, c.key, c.raw) for c in cases])
            for topic, cases in (("interactions", interactions), ("items", items))
        }
        assert sent == {"interactions": list(range(len(interactions))), "items": list(range(9 + 6))}
        env = worker_env(tmp_path, kafka, db_url, metrics_port, LSAT_WINDOW_MAX_SAMPLES="50")
        with running_worker(env, tmp_path / "worker.log") as worker:

            def handled(topic_cases: list[Case], metric: str) -> bool:
                values = scrape(metrics_port)
                statuses = ("ok", "late", "dlq", "duplicate")
                total = sum(counter(values, metric, status=s) for s in statuses)
                return total == len(topic_cases)

            wait_for(
                lambda: (
                    handled(interactions, "lsat_stream_events_total")
                    and handled(items, "lsat_stream_catalogue_items_total")
                ),
                120,
                "every record handled",
                worker,
            )
            produce(kafka, [("interactions", last.key, last.raw)])
            store = SampleStore(db_url)
            wait_for(lambda: "late-user:i1:880000000" in stored_offsets(store), 30, "alive", worker)
            values = scrape(metrics_port)
            assert worker.poll() is None
        letters = consume(kafka, kafka.topics.dlq, 100, timeout_s=15)
    interactions.append(last)
    expected = {
        (topic, n): outcome_of(case)[1]
        for topic, cases in (("interactions", interactions), ("items", items))
        for n, case in enumerate(cases)
        if outcome_of(case)[0] == "dead_lettered"
    }
    got = {
        (d.topic, d.offset): d.reason_code
        for d in map(DeadLetter.from_json, (r.value for r in letters))
    }
    assert got == expected
    assert len(letters) == len(expected)  # once each
    assert max(len(r.value) for r in letters) <= DLQ_RECORD_BYTES < KAFKA_MAX_MESSAGE_BYTES
    rows = {(d.source.topic, d.source.offset): d.reason for d in store.dead_letters()}
    assert rows == expected
    first = {}
    for n, case in enumerate(interactions):
        if case.expect == "stored":
            first[expected_keys([case])[0].key()] = n
    assert stored_offsets(store) == first
    assert sorted(store.catalogue()) == [f"c{k}" for k in range(6)]
    tally = Counter(outcome_of(c)[0] for c in interactions)
    events = {s: counter(values, "lsat_stream_events_total", status=s) for s in
              ("ok", "late", "dlq", "duplicate")}  # fmt: skip
    assert events["ok"] + events["late"] == tally["stored"]
    assert (events["dlq"], events["duplicate"]) == (tally["dead_lettered"], tally["duplicate"])
    item_tally = Counter(outcome_of(c)[0] for c in items)
    assert counter(values, "lsat_stream_catalogue_items_total", status="ok") == item_tally["stored"]
    assert (
        counter(values, "lsat_stream_catalogue_items_total", status="dlq")
        == item_tally["dead_lettered"]
    )
    reasons = Counter(expected.values())
    assert {
        r: counter(values, "lsat_stream_dead_letters_total", reason=r) for r in reasons
    } == reasons
    assert counter(values, "lsat_stream_partition_assignments_total") == 1
    store.close()
