"""End-to-end ingest through real ``lsat worker`` processes on the embedded tansu broker.

For each store (SQLite, PostgreSQL) and each worker count (1, 2), rounds interleaved
(1, 2, 1, 2, …): a fresh tansu broker whose ``interactions`` topic has ``--partitions``
partitions, a fresh store, a fresh consumer group of N ``lsat worker`` processes; once every
worker holds its partitions, ML-100K events are produced at full speed and the clock runs from
the first event produced to the moment the store holds every event (stored or dead-lettered,
polled every 20 ms). A raw aiokafka consumer reads the same topic afterwards (the naive
ceiling). Where the time goes, from the workers' own metrics and ``/proc``: seconds inside the
processor (``lsat_stream_processing_seconds``), CPU seconds of the event-loop thread (faust,
aiokafka) and of the processor's thread; ``--profile`` adds one cProfile'd 1-worker run per
store that splits the processor's time into decode / pipeline / store commit
(:mod:`workers_report`; the worker processes and stores: :mod:`worker_procs`). The pure
pipeline without Kafka consumer groups is ``bench/bench_ingest.py``. Writes
``bench/results/workers.md``, ``workers.json`` (every run) and ``workers.png``.

    python bench/bench_workers.py [--events 20000] [--partitions 2] [--rounds 2] [--profile]
    python bench/bench_workers.py --quick      # 2,000 events, SQLite, one round: workers_quick.md
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench_data import ml100k_folder
from tqdm import tqdm
from worker_procs import Counts, Workers, fresh_store
from workers_report import (
    Run,
    machine_load,
    profile_buckets,
    read_profile,
    thread_cpu_s,
    top_functions,
    write_report,
)

from lsat.core.settings import KafkaSettings
from lsat.data.loaders import load_dataset
from lsat.stream.broker import EmbeddedBroker, free_port
from lsat.stream.kafka_client import aiokafka_kwargs
from lsat.stream.replay import interaction_message

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "workers.md"
QUICK_RESULTS = RESULTS.with_name("workers_quick.md")
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POLL_S = 0.02
JUNK = b"\xff\xfe junk"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="default 20,000 (--quick: 2,000)")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--stores", help="sqlite and/or postgres (default both; --quick: sqlite)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 2; --quick: 1)")
    parser.add_argument("--profile", action="store_true", help="+1 cProfile'd run per store")
    parser.add_argument("--quick", action="store_true", help="2,000 events, SQLite, 1 round")
    parser.add_argument("--postgres-url", default=POSTGRES_ADMIN, help="admin URL (trust auth)")
    parser.add_argument("--poison-every", type=int, default=0, help="junk every K-th message")
    parser.add_argument("--data", type=Path, help="dataset folder (default: ML-100K)")
    parser.add_argument("--output", type=Path, help="default results/workers.md (--quick: _quick)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    parser.add_argument("--note", default="", help="a line appended to the results")
    args = parser.parse_args(argv)
    quick = {"events": 2_000, "stores": "sqlite", "rounds": 1, "output": QUICK_RESULTS}
    full = {"events": 20_000, "stores": "sqlite,postgres", "rounds": 2, "output": RESULTS}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:  # given on the command line: kept
            setattr(args, name, value)
    args.worker_counts = [int(w) for w in args.workers.split(",")]
    args.store_kinds = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(args.store_kinds) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown store(s) {sorted(unknown)}")
    return args


# --- one run ------------------------------------------------------------------------------


def produce(kafka: KafkaSettings, messages: Sequence[tuple[bytes, bytes]]) -> float:
    """Send every (key, value) to ``interactions`` at full speed; seconds until all acked."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, linger_ms=5, acks="all", batch_size=65536
    )
    try:
        started = time.perf_counter()
        for key, value in messages:
            producer.send(kafka.topics.interactions, key=key, value=value)
        producer.flush()
        return time.perf_counter() - started
    finally:
        producer.close()


async def _raw_read(kafka: KafkaSettings, n: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        kafka.topics.interactions,
        **aiokafka_kwargs(kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < n:
            chunk = await consumer.getmany(timeout_ms=1000, max_records=500)
            seen += sum(len(records) for records in chunk.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def raw_read_s(kafka: KafkaSettings, n: int) -> float:
    """Seconds for a plain aiokafka consumer (no group) to read ``n`` messages from the start."""
    return asyncio.run(_raw_read(kafka, n))


def run_once(
    store_kind: str,
    n_workers: int,
    messages: Sequence[tuple[bytes, bytes]],
    args: argparse.Namespace,
    tmp: Path,
    round_: int,
    profile: bool = False,
) -> Run:
    """One timed run on a fresh broker, store and consumer group."""
    n = len(messages)
    home = Path(tempfile.mkdtemp(prefix=f"run-{store_kind}-{n_workers}-", dir=tmp))
    prof = home / "worker.prof" if profile else None
    settings = KafkaSettings(partitions=args.partitions)
    with (
        fresh_store(store_kind, home, args.postgres_url) as db_url,
        EmbeddedBroker(settings, port=free_port(), log_path=home / "tansu.log") as broker,
    ):
        kafka = broker.kafka_settings
        counts = Counts(db_url)
        workers = Workers(home, kafka, db_url, prof)
        try:
            workers.start(n_workers)
            workers.wait_assigned(600)
            if prof is not None:
                Path(f"{prof}.start").touch()
                time.sleep(0.5)  # the profiler's watcher polls every 50 ms
            cpu_before = workers.cpu()
            assert broker._process is not None
            broker_before = sum(thread_cpu_s(broker._process.pid))
            produced: list[float] = []
            sender = threading.Thread(
                target=lambda: produced.append(produce(kafka, messages)), daemon=True
            )
            started = time.perf_counter()
            sender.start()
            bar = tqdm(total=n, unit="ev", leave=False, desc=f"{store_kind} x{n_workers}")
            done = 0
            produced_at: tuple[float, int] | None = None  # (time, events stored by then)
            while done < n:
                if time.perf_counter() - started > args.timeout:
                    raise RuntimeError(f"{done} of {n} events stored after {args.timeout}s")
                time.sleep(POLL_S)
                if produced and produced_at is None:
                    produced_at = (time.perf_counter(), counts.handled())
                done = counts.handled()
                bar.update(done - bar.n)
                workers.check_alive()
            finished = time.perf_counter()
            seconds = finished - started
            bar.close()
            sender.join()
            if produced_at is None:  # the workers stored the last event before the ack came
                produced_at = (finished, n)
            cpu_after = workers.cpu()
            broker_cpu = sum(thread_cpu_s(broker._process.pid)) - broker_before
            metrics = workers.metrics()
            buckets = None
            if prof is not None:
                Path(f"{prof}.dump").touch()
                wait_file(Path(f"{prof}.done"), 300)
                buckets = profile_buckets(read_profile(prof))
                buckets["loop_top"] = top_functions(read_profile(Path(f"{prof}.main")))
        finally:
            workers.stop()
        totals = counts.totals()
        counts.close()
        raw_s = raw_read_s(kafka, n)
    loop_cpu = sum(a[0] - b[0] for a, b in zip(cpu_after, cpu_before, strict=True))
    other_cpu = sum(a[1] - b[1] for a, b in zip(cpu_after, cpu_before, strict=True))
    return Run(
        store=store_kind,
        workers=n_workers,
        round=round_,
        events=n,
        seconds=seconds,
        produce_s=produced[0] if produced else float("nan"),
        raw_s=raw_s,
        stored=totals["stored"],
        distinct=totals["distinct"],
        dead=totals["dead"],
        samples=totals["samples"],
        processing_s=sum(m.get("lsat_stream_processing_seconds_sum", 0.0) for m in metrics),
        loop_cpu_s=loop_cpu,
        store_cpu_s=other_cpu,
        broker_cpu_s=broker_cpu,
        profiled=profile,
        buckets=buckets,
        drained=n - produced_at[1],
        drain_s=finished - produced_at[0],
    )


def wait_file(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear in {timeout_s}s")
        time.sleep(0.05)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "stream", "lsat", "bench"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip() + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")


def load_messages(args: argparse.Namespace) -> list[tuple[bytes, bytes]]:
    """The first ``--events`` interactions, as (key, value) messages."""
    dataset = load_dataset(args.data or ml100k_folder())
    events = dataset.interactions[: args.events]
    k = args.poison_every
    return [
        (it.user_id.encode(), JUNK if k and i % k == 0 else interaction_message(it))
        for i, it in enumerate(events)
    ]


def run_benchmark(args: argparse.Namespace, messages: Sequence[tuple[bytes, bytes]]) -> list[Run]:
    """Every planned run (stores × worker counts, rounds interleaved), then the profiled ones;
    writes the report."""
    load_start, started = machine_load(), time.time()
    runs: list[Run] = []
    plan = [
        (store, workers, r)
        for r in range(args.rounds)
        for store in args.store_kinds
        for workers in args.worker_counts
    ]
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for store, workers, r in plan:
            run = run_once(store, workers, messages, args, Path(tmp), r)
            print(run.line(), flush=True)
            runs.append(run)
        if args.profile:
            for store in args.store_kinds:
                run = run_once(store, 1, messages, args, Path(tmp), -1, profile=True)
                print(run.line(), flush=True)
                runs.append(run)
    write_report(
        runs,
        args.output,
        plot=not args.no_plot,
        context={
            "partitions": args.partitions,
            "commit": git_commit(),
            "load_start": load_start,
            "load_end": machine_load(),
            "minutes": (time.time() - started) / 60,
            "note": args.note,
        },
    )
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run_benchmark(args, load_messages(args))
    print(args.output.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
