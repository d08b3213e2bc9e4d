"""The worker's processor without Kafka: same results as the pure pipeline, exactly once."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from worker_cases import (
    N_EVENTS,
    feed,
    malformed_messages,
    pure_reference,
    stored_samples,
    stream_settings,
)

from lsat.data.loaders import load_dataset
from lsat.data.types import Interaction
from lsat.stream.dead_letter import DLQ_PAYLOAD_BYTES
from lsat.stream.events import DeadLetter
from lsat.stream.processor import StreamProcessor
from lsat.stream.store import SampleStore, SourcePosition
from lsat.stream.triggers import RetrainRequest


@pytest.fixture(scope="module")
def events(ml100k_dir: Path) -> list[Interaction]:
    return load_dataset(ml100k_dir).interactions[:N_EVENTS]


def test_processor_matches_pure_pipeline(db_url: str, tmp_path: Path, events) -> None:
    settings = stream_settings(tmp_path, db_url)
    samples, requests, final = pure_reference(settings, events)
    store = SampleStore(db_url)
    processor = StreamProcessor(settings, store)
    out = feed(processor, events, 0, batch=250)
    assert stored_samples(store) == samples
    assert store.count_samples() == len(samples) and store.count_interactions() == N_EVENTS
    sent = [RetrainRequest.from_json(m.value) for m in out]
    assert [(r.window_id, r.trigger, r.sample_count) for r in sent] == [
        (r.window_id, r.trigger, r.sample_count) for r in requests
    ]
    closed = sorted(store.last_closed_windows(100), key=lambda w: w.id)
    assert [(w.id, w.trigger, w.count) for w in closed] == [
        (r.window_id, r.trigger, r.sample_count) for r in requests
    ]
    assert processor.state.window == final.window
    assert processor.metrics.samples_stored._value.get() == len(samples)
    store.close()


def test_restart_and_redelivery_store_each_event_once(db_url: str, tmp_path: Path, events) -> None:
    settings = stream_settings(tmp_path, db_url)
    samples, requests, _ = pure_reference(settings, events)
    store = SampleStore(db_url)
    first = StreamProcessor(settings, store)
    feed(first, events[:2000], 0, batch=300)
    # "crash": a new processor restores from the store; offsets 1500.. are delivered again
    second = StreamProcessor(settings, SampleStore(db_url))
    out = feed(second, events[1500:], 1500, batch=300)
    assert second.metrics.events.labels(status="duplicate")._value.get() == 500
    assert stored_samples(store) == samples
    assert sorted(store.sample_event_ids()) == sorted(samples)
    sent = {RetrainRequest.from_json(m.value).window_id for m in out}
    for message in first.pending_outgoing():  # requests the "crashed" one never confirmed
        sent.add(RetrainRequest.from_json(message.value).window_id)
    assert sent == {r.window_id for r in requests}
    store.close()


def test_malformed_events_become_dead_letters(tmp_path: Path) -> None:
    table = malformed_messages()
    assert len({code for code, _ in table}) >= 20
    settings = stream_settings(tmp_path, f"sqlite:///{tmp_path / 'x.sqlite'}")
    store = SampleStore(settings.db_url)
    processor = StreamProcessor(settings, store)
    batch = [(raw, SourcePosition(0, n, "interactions")) for n, (_, raw) in enumerate(table)]
    out = processor.on_interactions(batch)
    letters = [DeadLetter.from_json(m.value) for m in out]
    assert [(d.reason_code, d.offset, d.payload_size) for d in letters] == [
        (code, n, len(raw)) for n, (code, raw) in enumerate(table)
    ]
    for letter, (_, raw) in zip(letters, table, strict=True):  # kept whole, or a prefix
        assert letter.payload == raw[: len(letter.payload or b"")]
        assert letter.payload_sha256 == hashlib.sha256(raw).hexdigest()
        assert letter.truncated == (len(raw) > DLQ_PAYLOAD_BYTES)
    assert store.count_interactions() == 0
    # re-delivered: no second row, the same records sent again, counted as duplicates
    again = processor.handle_interactions(batch)
    assert [m.value for m in again.outgoing] == [m.value for m in out]
    assert {o.outcome for o in again.outcomes} == {"duplicate"}
    assert processor.metrics.events.labels(status="duplicate")._value.get() == len(table)
    assert processor.metrics.events.labels(status="dlq")._value.get() == len(table)
    assert [d.reason for d in store.dead_letters()] == [code for code, _ in table]
    assert json.loads(out[0].value)["topic"] == "interactions"


@pytest.mark.parametrize(
    ("drift_detection", "expected"),
    [(True, {"label_shift", "mix_shift"}), (False, set())],
)
def test_detection_series_exist_at_zero_before_any_detection(
    tmp_path: Path, drift_detection: bool, expected: set[str]
) -> None:
    settings = stream_settings(tmp_path, f"sqlite:///{tmp_path / 'x.sqlite'}")
    stream = dataclasses.replace(settings.stream, drift_detection=drift_detection)
    settings = dataclasses.replace(settings, stream=stream)
    processor = StreamProcessor(settings, SampleStore(settings.db_url))
    samples = [
        s
        for metric in processor.metrics.registry.collect()
        if metric.name == "lsat_stream_drift_detections"
        for s in metric.samples
        if s.name == "lsat_stream_drift_detections_total"
    ]
    assert {s.labels["detector"] for s in samples} == expected
    assert all(s.value == 0 for s in samples)
