"""Real ``lsat worker`` processes in one consumer group over a 3-partition tansu broker, for
tests/scale/test_partitioned_workers.py: produce, start/kill/restart, wait, read back.

(A plain module next to the tests; the reference helpers come from
tests/stream/partitioned_cases.py, loaded by path.)
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from lsat.core.settings import KafkaSettings
from lsat.data.types import Interaction
from lsat.stream.broker import EmbeddedBroker, free_port
from lsat.stream.replay import interaction_message

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3


def stream_cases() -> ModuleType:
    """tests/stream/partitioned_cases.py (the one-worker reference and read-back helpers)."""
    path = REPO_ROOT / "tests" / "stream" / "partitioned_cases.py"
    spec = importlib.util.spec_from_file_location("partitioned_cases_for_scale", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def broker(tmp_path: Path) -> Iterator[KafkaSettings]:
    """A private tansu broker whose topics have 3 partitions."""
    settings = KafkaSettings(partitions=PARTITIONS)
    with EmbeddedBroker(settings, port=free_port(), log_path=tmp_path / "tansu.log") as running:
        yield running.kafka_settings


def with_sentinels(events: list[Interaction], span_s: int) -> list[tuple[Interaction, int | None]]:
    """The events (partition chosen by the user key), then one event per partition from a new
    user far past the last one: it makes no sample, but moves every partition's watermark past
    the last window, so it closes without waiting for the idle timeout."""
    end = events[-1].timestamp + 10 * span_s
    tail = [(Interaction(f"sentinel-{p}", "none", end, 0), p) for p in range(PARTITIONS)]
    return [*((it, None) for it in events), *tail]


@contextlib.contextmanager
def producer(
    kafka: KafkaSettings,
) -> Iterator[Callable[[list[tuple[Interaction, int | None]]], None]]:
    """A function that sends events keyed by user id (with a partition: to that one), in
    order, and returns once the broker has them all."""
    from kafka import KafkaProducer

    client = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=20, acks="all")

    def send(events: list[tuple[Interaction, int | None]]) -> None:
        for it, partition in events:
            client.send(
                kafka.topics.interactions,
                key=it.user_id.encode(),
                value=interaction_message(it),
                partition=partition,
            )
        client.flush()

    try:
        yield send
    finally:
        client.close()


def worker_env(home: Path, kafka: KafkaSettings, db_url: str, **extra: str) -> dict[str, str]:
    """A worker's environment: test timings, 3 partitions, its own ports."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LSAT_HOME": str(home),
        "LSAT_DATABASE_URL": db_url,
        "LSAT_KAFKA_BOOTSTRAP": kafka.bootstrap_servers or "",
        "LSAT_KAFKA_PARTITIONS": str(PARTITIONS),
        "LSAT_WORKER_WEB_PORT": str(free_port()),
        "LSAT_STREAM_METRICS_PORT": str(free_port()),
        "LSAT_KAFKA_SESSION_TIMEOUT_S": "2",
        "LSAT_KAFKA_HEARTBEAT_INTERVAL_S": "0.5",
        "LSAT_DRIFT_DETECTION": "0",
        **extra,
    }


class Workers:
    """N ``lsat worker`` processes of one consumer group (the same ``LSAT_STREAM_APP_ID``)."""

    def __init__(self, home: Path, kafka: KafkaSettings, db_url: str, **extra: str) -> None:
        self.home = home
        self.app_id = f"lsat-scale-{uuid.uuid4().hex[:6]}"
        self.env = {"LSAT_STREAM_APP_ID": self.app_id, **extra}
        self.kafka, self.db_url = kafka, db_url
        self.procs: list[subprocess.Popen[bytes]] = []
        self.metrics_ports: list[int] = []
        self.starts = 0

    def start(self, slot: int | None = None) -> subprocess.Popen[bytes]:
        """Start a worker (in ``slot``: replacing the one there)."""
        home = self.home / f"w{slot if slot is not None else len(self.procs)}"
        home.mkdir(parents=True, exist_ok=True)
        env = worker_env(home, self.kafka, self.db_url, **self.env)
        port = int(env["LSAT_STREAM_METRICS_PORT"])
        self.starts += 1
        log = open(self.home / f"worker{self.starts}.log", "ab")  # noqa: SIM115 - the child's
        proc = subprocess.Popen(
            [sys.executable, "-m", "lsat.apps.cli", "worker"],
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if slot is None:
            self.procs.append(proc)
            self.metrics_ports.append(port)
        else:
            self.procs[slot], self.metrics_ports[slot] = proc, port
        return proc

    def assigned(self, slot: int) -> bool:
        """Whether the worker in ``slot`` has been given partitions (its metrics say so)."""
        url = f"http://127.0.0.1:{self.metrics_ports[slot]}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return False
        for line in text.splitlines():
            if line.startswith("lsat_stream_partition_assignments_total "):
                return float(line.rsplit(" ", 1)[1]) >= 1
        return False

    def kill(self, slot: int) -> None:
        """SIGKILL one worker and wait for it."""
        os.kill(self.procs[slot].pid, signal.SIGKILL)
        self.procs[slot].wait(10)

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"worker {proc.pid} exited with {proc.returncode}")

    def stop(self) -> None:
        """SIGKILL every worker (the test has what it needs; a graceful stop only costs time)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(10)


def wait_for(
    predicate: Callable[[], bool], timeout_s: float, what: str, workers: Workers | None = None
) -> None:
    """Poll ``predicate`` until true; fail when a worker died or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if workers is not None:
            workers.check_alive()
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
