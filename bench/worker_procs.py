"""The processes and stores of ``bench_workers.py``: a throwaway database per run, its counts
polled read-only, and N ``lsat worker`` processes of one fresh consumer group."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from workers_report import parse_metrics, thread_cpu_s

from lsat.core.settings import KafkaSettings
from lsat.stream.broker import free_port

__all__ = ["Counts", "Workers", "fresh_store"]

ROOT = Path(__file__).resolve().parents[1]


# --- stores -------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_store(kind: str, tmp: Path, admin_url: str) -> Iterator[str]:
    """A new empty database URL: a SQLite file, or a throwaway PostgreSQL database (dropped)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / f'store-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    name = f"lsat_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


class Counts:
    """Stored events, dead letters and samples of one store, polled read-only."""

    def __init__(self, url: str) -> None:
        from lsat.stream.store import SampleStore

        SampleStore(url).close()  # create the schema before any worker starts
        self.engine = create_engine(url)

    def handled(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM stream_interactions)"
                        " + (SELECT count(*) FROM dead_letters)"
                    )
                ).scalar_one()
            )

    def totals(self) -> dict[str, int]:
        queries = {
            "stored": "SELECT count(*) FROM stream_interactions",
            "distinct": "SELECT count(DISTINCT event_id) FROM stream_interactions",
            "dead": "SELECT count(*) FROM dead_letters",
            "samples": "SELECT count(*) FROM samples",
        }
        with self.engine.connect() as conn:
            return {k: int(conn.execute(text(q)).scalar_one()) for k, q in queries.items()}

    def close(self) -> None:
        self.engine.dispose()


# --- workers ------------------------------------------------------------------------------


class Workers:
    """N ``lsat worker`` processes of one fresh consumer group."""

    def __init__(self, home: Path, kafka: KafkaSettings, db_url: str, profile: Path | None):
        self.home, self.kafka, self.db_url, self.profile = home, kafka, db_url, profile
        self.group = f"lsat-bench-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    def start(self, n: int) -> None:
        for k in range(n):
            home = self.home / f"w{k}"
            home.mkdir(parents=True, exist_ok=True)
            port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "LSAT_HOME": str(home),
                "LSAT_DATABASE_URL": self.db_url,
                "LSAT_KAFKA_BOOTSTRAP": self.kafka.bootstrap_servers or "",
                "LSAT_KAFKA_PARTITIONS": str(self.kafka.partitions),
                "LSAT_STREAM_APP_ID": self.group,
                "LSAT_WORKER_WEB_PORT": str(free_port()),
                "LSAT_STREAM_METRICS_PORT": str(port),
            }
            if self.profile is not None and k == 0:
                command = [sys.executable, str(ROOT / "bench" / "profiled_worker.py")]
                command.append(str(self.profile))
            else:
                command = [sys.executable, "-m", "lsat.apps.cli", "worker"]
            with open(self.home / f"worker{k}.log", "ab") as log:
                proc = subprocess.Popen(
                    command, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT
                )
            self.procs.append(proc)
            self.ports.append(port)

    def metrics(self) -> list[dict[str, float]]:
        """Each worker's ``/metrics`` (the series the report uses)."""
        found = []
        for port in self.ports:
            try:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    found.append(parse_metrics(response.read().decode()))
            except OSError:
                found.append({})
        return found

    def wait_assigned(self, timeout_s: float, stable_s: float = 2.0) -> None:
        """Until every worker got partitions and no assignment changed for ``stable_s``."""
        deadline = time.monotonic() + timeout_s
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            self.check_alive()
            seen = [m.get("lsat_stream_partition_assignments_total", 0) for m in self.metrics()]
            if seen != last:
                last, since = seen, time.monotonic()
            elif min(seen) >= 1 and time.monotonic() - since >= stable_s:
                return
            time.sleep(0.2)
        raise RuntimeError(f"workers not assigned in {timeout_s}s (see {self.home}/worker*.log)")

    def cpu(self) -> list[tuple[float, float]]:
        """(event-loop thread, other threads) CPU seconds of each worker."""
        return [thread_cpu_s(p.pid) for p in self.procs]

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {proc.pid} exited with {proc.returncode}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(10)
