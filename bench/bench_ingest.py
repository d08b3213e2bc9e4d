"""Ingest throughput: validate → history → window → sample store, vs a raw aiokafka consumer.

Both read the same topic of the same embedded tansu broker in the same run, so the printed
ratio (ingest events/s ÷ raw events/s) compares like with like. Each reader runs ``--repeat``
times (the ingest on a fresh store each time) and the best run counts, so a busy shared machine
disturbs the number less; process CPU seconds are printed next to wall seconds. With
``--poison-every K`` every K-th message is replaced by binary junk (dead-lettered inside the
batch: the fast path, no per-record fallback). Writes ``--output`` (bench/results/ingest.md).
This is the pure pipeline in one process; end to end through real ``lsat worker`` processes on
the broker (1 vs 2 workers, SQLite and PostgreSQL) is ``bench/bench_workers.py``.

    python bench/bench_ingest.py [--events 20000] [--batch 500] [--repeat 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_data import ml100k_folder

from lsat.core.settings import KafkaSettings, Settings, StreamSettings
from lsat.data.loaders import load_dataset
from lsat.stream.broker import EmbeddedBroker, free_port
from lsat.stream.kafka_client import aiokafka_kwargs
from lsat.stream.processor import StreamProcessor
from lsat.stream.replay import replay
from lsat.stream.store import SampleStore, SourcePosition

RESULTS = Path(__file__).resolve().parent / "results" / "ingest.md"
JUNK = b"\xff\xfe junk"


async def consume(
    kafka: KafkaSettings, events: int, batch: int, handle: Callable[[list[Any]], None]
) -> tuple[float, float]:
    """(wall, process CPU) seconds to read ``events`` messages from the start, calling
    ``handle(records)`` per fetched batch."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        kafka.topics.interactions,
        **aiokafka_kwargs(kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    try:
        started, cpu = time.perf_counter(), time.process_time()
        while seen < events:
            chunk = await consumer.getmany(timeout_ms=1000, max_records=batch)
            for records in chunk.values():
                handle(records)
                seen += len(records)
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        await consumer.stop()


def ingest_once(
    kafka: KafkaSettings, n: int, args: argparse.Namespace, home: Path, db_url: str
) -> tuple[float, float, int, int]:
    """One ingest run on a fresh store: (wall s, CPU s, stored events, samples)."""
    settings = Settings(
        home=home, database_url=db_url, stream=StreamSettings(window_max_samples=2000)
    )
    store = SampleStore(db_url)
    processor = StreamProcessor(settings, store)

    def ingest(records: list[Any]) -> None:
        batch = []
        for r in records:
            poisoned = args.poison_every and r.offset % args.poison_every == 0
            batch.append(
                (JUNK if poisoned else r.value, SourcePosition(r.partition, r.offset, r.topic))
            )
        processor.on_interactions(batch)

    wall, cpu = asyncio.run(consume(kafka, n, args.batch, ingest))
    stored, samples = store.count_interactions(), store.count_samples()
    store.close()
    return wall, cpu, stored, samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="runs per reader; best counts")
    parser.add_argument("--poison-every", type=int, default=0, help="junk every K-th message")
    parser.add_argument("--database-url", help="default: a temporary SQLite file per run")
    parser.add_argument("--data", type=Path, help="dataset folder (default: ML-100K)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="a line appended to the results")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args()

    dataset = load_dataset(args.data or ml100k_folder())
    dataset.interactions = dataset.interactions[: args.events]
    n = len(dataset.interactions)
    poisoned = len(range(0, n, args.poison_every)) if args.poison_every else 0
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(KafkaSettings(partitions=1), port=free_port()) as broker,
    ):
        kafka = broker.kafka_settings
        replay(dataset, kafka, publish_items=False, progress=True)
        raw = [asyncio.run(consume(kafka, n, args.batch, lambda records: None))]
        runs = []
        for k in range(args.repeat):
            raw.append(asyncio.run(consume(kafka, n, args.batch, lambda records: None)))
            db_url = args.database_url or f"sqlite:///{tmp}/bench{k}.sqlite"
            runs.append(ingest_once(kafka, n, args, Path(tmp), db_url))
            if args.database_url:
                break  # a given database keeps what the first run stored
    stored, samples = runs[0][2], runs[0][3]
    if stored != n - poisoned:
        raise SystemExit(f"ingest stored {stored} of {n - poisoned} events")
    raw_s, raw_cpu = min(raw)
    ingest_s, ingest_cpu = min((wall, cpu) for wall, cpu, _, _ in runs)
    median_s = statistics.median(wall for wall, *_ in runs)
    raw_rate, ingest_rate = n / raw_s, n / ingest_s
    ratio = ingest_rate / raw_rate
    backend = (args.database_url or "sqlite").split(":", 1)[0]
    junk = f", every {args.poison_every}th message junk ({poisoned:,} dead-lettered)"
    lines = [
        "# Ingest throughput (bench/bench_ingest.py)",
        "",
        f"{n:,} ml-100k events on one tansu partition, batches of {args.batch}, "
        f"store {backend}, drift detectors on{junk if poisoned else ''}; "
        f"{platform.processor() or platform.machine()}, measured side by side in one run, "
        f"best of {len(runs)} runs per reader.",
        "",
        "| reader | seconds (best) | seconds (median) | CPU seconds | events/s |",
        "|---|---:|---:|---:|---:|",
        f"| raw aiokafka consumer | {raw_s:.2f} | {statistics.median(w for w, _ in raw):.2f} "
        f"| {raw_cpu:.2f} | {raw_rate:,.0f} |",
        f"| validate → history → window → store ({samples:,} samples) | {ingest_s:.2f} "
        f"| {median_s:.2f} | {ingest_cpu:.2f} | {ingest_rate:,.0f} |",
        "",
        f"**ratio ingest / raw = {ratio:.3f}** (the raw consumer is {1 / ratio:.0f}× faster, "
        "so the broker is not the bottleneck: per-event Python work and the DB write are).",
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    if args.json:
        numbers = {
            "events": n,
            "dead_lettered": poisoned,
            "raw_s": raw_s,
            "ingest_s": ingest_s,
            "ingest_median_s": median_s,
            "ingest_cpu_s": ingest_cpu,
            "runs_s": [wall for wall, *_ in runs],
            "runs_cpu_s": [cpu for _, cpu, *_ in runs],
        }
        args.json.write_text(json.dumps(numbers))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
