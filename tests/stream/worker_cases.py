"""Shared pieces of the worker tests: settings, the pure reference run, malformed messages.

(A plain module next to the tests; pytest puts this folder on ``sys.path``.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lsat.core.settings import Settings, StreamSettings
from lsat.data.samples import HistoryTracker
from lsat.data.types import Interaction
from lsat.stream.events import parse_interaction
from lsat.stream.pipeline import Detectors, PipelineState, process_interaction
from lsat.stream.processor import StreamProcessor, window_policy
from lsat.stream.replay import interaction_message
from lsat.stream.store import SampleStore, SourcePosition
from lsat.stream.triggers import RetrainRequest

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
