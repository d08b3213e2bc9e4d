"""The worker's processor without Kafka: same results as the pure pipeline, exactly once."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lsat.data.loaders import load_dataset
from lsat.data.samples import HistoryTracker
from lsat.data.types import Interaction
from lsat.settings import Settings, StreamSettings
from stream.events import DeadLetter, parse_interaction
from stream.pipeline import Detectors, PipelineState, process_interaction
from stream.processor import StreamProcessor, window_policy
from stream.replay import interaction_message
from stream.store import SampleStore, SourcePosition
from stream.triggers import RetrainRequest

N_EVENTS = 5000
WINDOW = 900


def malformed_messages() -> list[tuple[str, bytes]]:
    """stream-logic's table of malformed events, minus those the real clock accepts."""
    path = Path(__file__).with_name("test_events.py")
    spec = importlib.util.spec_from_file_location("stream_event_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = []
    for code, raw in module.MALFORMED:
        try:
            parse_interaction(raw)
        except Exception:
            table.append((code, raw))
    return table


def stream_settings(home: Path, db_url: str) -> Settings:
    stream = StreamSettings(window_max_samples=WINDOW, drift_detection=False)
    return Settings(home=home, database_url=db_url, stream=stream)


@pytest.fixture(scope="module")
def events(ml100k_dir: Path) -> list[Interaction]:
    return load_dataset(ml100k_dir).interactions[:N_EVENTS]


def pure_reference(settings: Settings, events: list[Interaction]):
    """Samples (event id → window id) and requests from the pure pipeline alone."""
    state, history = PipelineState(), HistoryTracker()
    samples: dict[str, int] = {}
    requests: list[RetrainRequest] = []
    for interaction in events:
        state, result = process_interaction(
            state,
            interaction,
            policy=window_policy(settings),
            history=history,
            detectors=Detectors(),
            now_s=0.0,
        )
        if result.sample is not None:
            samples[result.sample.event_id] = result.window_id
        requests.extend(result.requests)
    return samples, requests, state


def feed(processor: StreamProcessor, events: list[Interaction], first_offset: int, batch: int):
    messages = [
        (interaction_message(it), SourcePosition(0, first_offset + n, "interactions"))
        for n, it in enumerate(events)
    ]
    out = []
    for start in range(0, len(messages), batch):
        out.extend(processor.on_interactions(messages[start : start + batch]))
    return out


def stored_samples(store: SampleStore) -> dict[str, int]:
    result = {}
    for window in [*store.last_closed_windows(1000), *store.open_windows()]:
        for sample in store.window_samples(window.id):
            result[sample.event_id] = window.id
    return result


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
    assert [(d.reason_code, d.offset, d.payload) for d in letters] == [
        (code, n, raw) for n, (code, raw) in enumerate(table)
    ]
    assert store.count_interactions() == 0
    assert processor.on_interactions(batch) == []  # re-delivered: DLQ'd once only
    assert [d.reason for d in store.dead_letters()] == [code for code, _ in table]
    assert json.loads(out[0].value)["topic"] == "interactions"
