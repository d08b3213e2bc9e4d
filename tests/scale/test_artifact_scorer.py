"""A scorer on another ``LSAT_HOME`` follows the trainer through the ``db`` artifact store.

The trainer (:func:`run_trainer`, tiny Llama, ``LSAT_ARTIFACT_STORE=db``) and an ``lsat serve``
process share only PostgreSQL and a real tansu broker (3 partitions). The scorer is paused
(SIGSTOP) while the trainer works and resumed only once the trainer's artifact folder has been
moved away, so every adapter it serves came from the database: fetched, verified and cached
under its own home. A version whose stored archive has one flipped byte is refused and the
scorer keeps serving the previous set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from artifact_cases import flip_stored_byte
from kafka import KafkaProducer
from needs import missing

from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.model.base_model import TINY_LLAMA
from lsat.adapters.trainer import RetryPolicy, run_trainer
from lsat.adapters.trainer.child import run_job
from lsat.core.settings import KafkaSettings, Settings
from lsat.stream.kafka_client import kafka_python_kwargs
from lsat.stream.triggers import RetrainRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters" / "trainer"))
from trainer_helpers import fill_windows, trainer_settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 600.0  # importing torch on a loaded 2-core machine takes minutes
SWAP_TIMEOUT_S = 300.0
JOB_TIMEOUT_S = 600.0
FAST_RETRY = RetryPolicy(max_attempts=1, backoff_s=0.0)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A tansu broker with the project topics under their default names (3 partitions): the
    scorer process reads the default ``adapter.versions``."""
    from lsat.stream.broker import BrokerError, EmbeddedBroker, find_tansu, free_port

    try:
        find_tansu()
    except BrokerError as exc:
        missing(f"no tansu broker binary: {exc}")
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedBroker(KafkaSettings(partitions=3), port=free_port(), log_path=log_path) as b:
        yield b


def _trainer_settings(home: Path, db_url: str, kafka: KafkaSettings) -> Settings:
    """A fast tiny-Llama trainer that always promotes (margin 1) and puts into the db store."""
    settings = trainer_settings(home, db_url, margin=1.0, merge=False, validation_fraction=0.25)
    stream = replace(settings.stream, session_timeout_s=2.0, heartbeat_interval_s=0.5)
    return replace(settings, kafka=kafka, stream=stream, artifact_store="db")


def _request_window(kafka: KafkaSettings, window_id: int) -> None:
    producer = KafkaProducer(**kafka_python_kwargs(kafka), acks="all")
    try:
        request = RetrainRequest(window_id, 0, 10, 40, "full", {}, time.time())
        key = str(window_id).encode()
        producer.send(kafka.topics.retrain, request.to_json(), key=key).get(30)
    finally:
        producer.close()


class ScorerProcess:
    """``lsat serve`` in a child process with its own ``LSAT_HOME``."""

    def __init__(self, home: Path, db_url: str, bootstrap: str) -> None:
        home.mkdir(parents=True)
        self.home = home
        self.log_path = home / "scorer.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "OMP_NUM_THREADS": "1",
            "LSAT_HOME": str(home),
            "LSAT_DATABASE_URL": db_url,
            "LSAT_BASE_MODEL": TINY_LLAMA,
            "LSAT_KAFKA_BOOTSTRAP": bootstrap,
            "LSAT_ARTIFACT_STORE": "db",
            "LSAT_ADMIN_TOKEN": "scale-test-token",
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lsat.apps.cli", "serve", "--port", "0"],
                env=env,
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = ""

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self) -> None:
        def started() -> bool:
            assert self.process.poll() is None, f"scorer exited:\n{self.log[-3000:]}"
            found = re.search(r"scorer on (http://\S+)", self.log)
            self.url = found.group(1) if found else ""
            return bool(found)

        assert wait_for(started, START_TIMEOUT_S), f"scorer did not start:\n{self.log[-3000:]}"

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def versions(self) -> dict[str, int] | None:
        status, body = self.get("/adapters")
        return json.loads(body)["versions"] if status == 200 else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_scorer_without_the_trainers_disk_hot_swaps_from_the_database(
    tmp_path: Path, broker: object, postgres_url: str
) -> None:
    kafka: KafkaSettings = broker.kafka_settings  # type: ignore[attr-defined]
    trainer = _trainer_settings(tmp_path / "trainer", postgres_url, kafka)
    fill_windows(postgres_url, {1: 40, 2: 40, 3: 40})
    hidden = trainer.artifact_dir.with_name("artifacts-moved-away")
    scorer = ScorerProcess(tmp_path / "scorer-home", postgres_url, kafka.bootstrap_servers or "")
    try:
        scorer.wait_started()
        assert scorer.versions() is None  # nothing registered yet

        def train(window_id: int) -> None:
            """One trainer job while the scorer is paused; then the trainer's folder goes."""
            scorer.pause()
            if hidden.exists():
                hidden.rename(trainer.artifact_dir)
            _request_window(kafka, window_id)
            stop = threading.Event()  # a dead-lettered job would leave run_trainer waiting
            timer = threading.Timer(JOB_TIMEOUT_S, stop.set)
            timer.start()
            try:
                jobs = run_trainer(
                    trainer, stop=stop, max_jobs=1, train_fn=run_job, retry=FAST_RETRY
                )
            finally:
                timer.cancel()
            assert jobs == 1, f"window {window_id} was not trained within {JOB_TIMEOUT_S} s"
            trainer.artifact_dir.rename(hidden)

        train(1)
        with open_registry(postgres_url) as registry:
            first = registry.resolve("serving-short")
        assert first is not None and first.version == 1
        assert first.uri is not None and first.uri.startswith("db://artifacts/")
        assert not Path(first.path).exists()  # the trainer's folder is out of reach
        scorer.resume()
        assert wait_for(lambda: scorer.versions() == {"short": 1}, SWAP_TIMEOUT_S), scorer.log

        train(2)
        with open_registry(postgres_url) as registry:
            second = registry.resolve("serving-short")
        assert second is not None and second.version == 2 and second.uri != first.uri
        scorer.resume()
        assert wait_for(lambda: scorer.versions() == {"short": 2}, SWAP_TIMEOUT_S), scorer.log
        cache = scorer.home / "cache" / "artifacts"
        digests = sorted(v.uri.rsplit("/", 1)[1] for v in (first, second) if v.uri)
        assert sorted(p.name for p in cache.iterdir()) == digests

        train(3)
        with open_registry(postgres_url) as registry:
            third = registry.resolve("serving-short")
            assert third is not None and third.version == 3 and third.uri is not None
            flip_stored_byte(registry.engine, third.uri.rsplit("/", 1)[1])
        scorer.resume()
        refused = 'lsat_hot_swaps_total{outcome="refused"} 1.0'
        assert wait_for(lambda: refused in scorer.get("/metrics")[1], SWAP_TIMEOUT_S), scorer.log
        assert scorer.versions() == {"short": 2}  # the old set keeps serving
        assert sorted(p.name for p in cache.iterdir()) == digests  # nothing of v3 cached
        assert "refused serving set" in scorer.log and "hashes to" in scorer.log
        assert scorer.get("/healthz")[0] == 200
        scorer.stop()
        # SIGTERM ends the model loop on the main thread and the process exits by itself
        assert scorer.process.returncode == 0, scorer.log
    finally:
        scorer.stop()
