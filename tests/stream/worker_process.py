"""The real worker as a child process, for tests on the real broker: env, start/stop, scrape.

(A plain module next to the tests; pytest puts this folder on ``sys.path``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from lsat.core.settings import KafkaSettings
from lsat.stream.broker import EmbeddedBroker, free_port
from lsat.stream.kafka_client import aiokafka_kwargs

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def private_broker(tmp_path: Path, partitions: int = 1) -> Iterator[KafkaSettings]:
    """A broker of its own with the default topic names (the worker's are not configurable)."""
    broker = EmbeddedBroker(
        KafkaSettings(partitions=partitions), port=free_port(), log_path=tmp_path / "tansu.log"
    )
    with broker:
        yield broker.kafka_settings


def produce(
    kafka: KafkaSettings, messages: list[tuple[str, bytes | None, bytes | None]]
) -> list[int]:
    """Send ``(topic, key, value)`` in order; their offsets. Key and value may both be None
    (such a record goes to partition 0: the clients' ``send`` refuses it, the protocol not)."""
    from aiokafka import AIOKafkaProducer

    async def send_all() -> list[int]:
        producer = AIOKafkaProducer(**aiokafka_kwargs(kafka), max_request_size=8 * 1024 * 1024)
        await producer.start()
        try:
            futures = []
            for topic, key, value in messages:
                if key is None and value is None:  # legal in Kafka; send() asserts against it
                    batch = producer.create_batch()
                    batch.append(key=None, value=None, timestamp=None)
                    futures.append(await producer.send_batch(batch, topic, partition=0))
                else:
                    futures.append(await producer.send(topic, key=key, value=value))
            return [(await f).offset for f in futures]
        finally:
            await producer.stop()

    return asyncio.run(send_all())


def worker_env(
    home: Path, kafka: KafkaSettings, db_url: str, metrics_port: int, **extra: str
) -> dict[str, str]:
    """Environment of a worker with test timings (2 s session, 0.5 s heartbeat)."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LSAT_HOME": str(home),
        "LSAT_DATABASE_URL": db_url,
        "LSAT_KAFKA_BOOTSTRAP": kafka.bootstrap_servers or "",
        "LSAT_WORKER_WEB_PORT": str(free_port()),
        "LSAT_STREAM_METRICS_PORT": str(metrics_port),
        "LSAT_KAFKA_SESSION_TIMEOUT_S": "2",
        "LSAT_KAFKA_HEARTBEAT_INTERVAL_S": "0.5",
        "LSAT_STREAM_APP_ID": f"lsat-test-{uuid.uuid4().hex[:6]}",
        **extra,
    }


@contextlib.contextmanager
def running_worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``lsat worker`` in a child process, stopped with SIGTERM (then SIGKILL) at the end."""
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "lsat.apps.cli", "worker"],
            env=env,
            cwd=env["LSAT_HOME"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` as {series: value} (series written as in the exposition)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    values = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def counter(values: dict[str, float], name: str, **labels: str) -> float:
    """One series of a scrape (0 when absent)."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return values.get(f"{name}{{{inner}}}" if labels else name, 0.0)


def wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    worker: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``predicate`` (errors count as False) until true; fail if the worker exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"worker exited with {worker.returncode} waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
