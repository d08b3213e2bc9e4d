"""bench_workers --quick logic on a tiny input: one real ``lsat worker`` on the embedded tansu
broker into SQLite, with junk messages; the report is written and every event was stored or
dead-lettered exactly once, with the samples a single in-process processor makes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lsat.core.settings import Settings
from lsat.stream.processor import StreamProcessor
from lsat.stream.store import SampleStore, SourcePosition

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_workers  # noqa: E402

pytestmark = pytest.mark.kafka


def reference_samples(messages: list[tuple[bytes, bytes]], tmp_path: Path) -> int:
    """Samples of the same messages through one in-process processor (one batch)."""
    url = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    store = SampleStore(url)
    processor = StreamProcessor(Settings(home=tmp_path, database_url=url), store)
    processor.on_interactions(
        [(value, SourcePosition(0, k, "interactions")) for k, (_, value) in enumerate(messages)]
    )
    samples = store.count_samples()
    store.close()
    return samples


def test_quick_run_stores_every_event_once_and_writes_the_report(tmp_path: Path) -> None:
    output = tmp_path / "workers.md"
    argv = ["--quick", "--events", "300", "--workers", "1", "--poison-every", "50"]
    args = bench_workers.parse_args([*argv, "--output", str(output)])
    assert args.store_kinds == ["sqlite"] and args.rounds == 1
    messages = bench_workers.load_messages(args)
    runs = bench_workers.run_benchmark(args, messages)

    assert [(r.store, r.workers) for r in runs] == [("sqlite", 1)]
    run = runs[0]
    assert run.events == 300 and run.dead == 6  # offsets 0, 50, … 250 are junk
    assert run.stored == run.distinct == 294
    assert run.exactly_once
    assert run.samples == reference_samples(messages, tmp_path) > 0
    assert run.processing_s > 0 and run.seconds > 0
    report = output.read_text()
    assert "| sqlite | 1 | 1 |" in report
    assert "yes (" in report and "6 dead letters" in report
    assert output.with_suffix(".png").stat().st_size > 0
