"""Two ``lsat trainer`` processes in one consumer group: the standby takes over a killed job.

Real processes (the ``lsat trainer`` entry point), a private tansu broker, PostgreSQL for the
registry and the samples, the tiny Llama. The active trainer (whichever is assigned the
``adapter.retrain`` partition) is SIGKILLed as soon as its training child has started training
window 1. After about a session timeout the group coordinator drops it, the standby is assigned
the partition, reads the uncommitted request again and finishes that window. While it does, the
registry is read over and over: every version it shows must have a complete artifact matching its
sha256 (no partial version), and window 1 ends with exactly one short version, promoted.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from needs import missing

from lsat.adapters.lifecycle.registry import (
    AdapterVersion,
    AliasNotFound,
    RegistryStore,
    open_registry,
)
from lsat.adapters.model.base_model import TINY_LLAMA
from lsat.adapters.trainer.child import TRAINING_STARTED
from lsat.adapters.trainer.pool import load_verified
from lsat.core.settings import KafkaSettings, Settings, to_env
from lsat.stream.broker import BrokerError, EmbeddedBroker, find_tansu, free_port
from lsat.stream.kafka_client import kafka_python_kwargs
from lsat.stream.triggers import RetrainRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters" / "trainer"))
from trainer_helpers import fill_windows  # a helper module of another test folder

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
SESSION_TIMEOUT_S = 2.0
WAIT_S = 600.0
"""How long a wait may take before the test calls the run stuck (the machine is shared)."""
JOINED = re.compile(r"Successfully joined group")
CHILD_STARTED = re.compile(r"training short adapter in child pid (\d+)")
CHILD_TRAINING = TRAINING_STARTED.split("%d")[1].split("%s")[0]  # ": training the "
OUTCOME = re.compile(r"window (\d+): (\w+) \(")
ASSIGNED = re.compile(
    r"^(\S+ \S+) INFO kafka\.coordinator\.consumer: Setting newly assigned partitions \{", re.M
)


@pytest.fixture
def broker(tmp_path: Path) -> object:
    """A private tansu broker with the default topic names (``lsat trainer`` reads those)."""
    try:
        find_tansu()
    except BrokerError as exc:  # pragma: no cover - depends on the machine
        missing(f"no tansu broker binary: {exc}")
    with EmbeddedBroker(
        KafkaSettings(partitions=1), port=free_port(), log_path=tmp_path / "t.log"
    ) as b:
        yield b


def _settings(tmp_path: Path, kafka: KafkaSettings, db_url: str) -> Settings:
    """Both trainers' settings: the tiny Llama; training capped at a few seconds (epochs high,
    ``max_train_seconds`` low: the kill lands while the active one trains, the standby finishes
    quickly); a small session timeout so the dead member is dropped quickly."""
    base = Settings(home=tmp_path / "home", database_url=db_url, base_model=TINY_LLAMA)
    trainer = replace(
        base.trainer,
        group_id=f"standby-{uuid.uuid4().hex[:6]}",
        epochs=1000,
        max_train_seconds=4.0,
        layers=2,
        batch_size=8,
        max_attempts=2,
        retry_backoff_s=0.1,
    )
    stream = replace(base.stream, session_timeout_s=SESSION_TIMEOUT_S, heartbeat_interval_s=0.5)
    return replace(base, kafka=kafka, trainer=trainer, stream=stream)


class Trainer:
    """One ``lsat trainer`` process writing its log to a file the test reads."""

    def __init__(self, name: str, settings: Settings, folder: Path) -> None:
        self.name = name
        self.log_path = folder / f"trainer-{name}.log"
        env = {**os.environ, **to_env(settings), "PYTHONPATH": str(REPO_ROOT)}
        env["OMP_NUM_THREADS"] = "1"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lsat.apps.cli",
                    "trainer",
                    "--metrics-port",
                    str(free_port()),
                ],
                env=env,
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_for(
    what: str, predicate: Callable[[], object], *, watch: Sequence[Trainer] = ()
) -> object:
    """Poll ``predicate`` until it returns something true; fail when a watched trainer exits
    or after :data:`WAIT_S` (a limit for a stuck run, not a timing requirement)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        for trainer in watch:
            code = trainer.process.poll()
            tail = trainer.log()[-3000:]
            assert code is None, (
                f"trainer {trainer.name} exited ({code}) waiting for {what}:\n{tail}"
            )
        time.sleep(0.1)
    raise AssertionError(f"timed out after {WAIT_S:.0f} s waiting for {what}")


def _send_request(kafka: KafkaSettings, window_id: int) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_python_kwargs(kafka), acks="all")
    try:
        request = RetrainRequest(window_id, 0, 10, 30, "full", {}, 1.0)
        key = str(window_id).encode()
        producer.send(kafka.topics.retrain, request.to_json(), key=key).get(30)
    finally:
        producer.close()


def _training(trainer: Trainer) -> int | None:
    """The pid of this trainer's child once it logged that it trains, else ``None``."""
    text = trainer.log()
    for match in CHILD_STARTED.finditer(text):
        pid = int(match.group(1))
        if f"child pid {pid}{CHILD_TRAINING}" in text:
            return pid
    return None


def _window_shorts(registry: RegistryStore) -> list[AdapterVersion]:
    """Window 1's short versions, after checking that every registered version's artifact is
    complete and matches its sha256 (``load_verified`` raises on a missing or partial one)."""
    for kind in ("short", "merged", "long"):
        for version in registry.list(kind=kind):
            load_verified(version)
    return [v for v in registry.list(kind="short") if "1" in {str(w) for w in v.window_ids}]


def _served_shorts(registry: RegistryStore) -> list[int]:
    """Every short version ``serving-short`` ever pointed at."""
    try:
        history = registry.alias_history("serving-short")
    except AliasNotFound:
        return []
    return sorted({change.target.version for change in history})


def _outcomes(trainer: Trainer) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in OUTCOME.finditer(trainer.log())]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _assignment_time(trainer: Trainer) -> datetime | None:
    """When ``trainer`` last logged that it was assigned the retrain partition."""
    stamps = ASSIGNED.findall(trainer.log())
    return datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S,%f") if stamps else None


@contextmanager
def _two_trainers(tmp_path: Path, settings: Settings) -> Iterator[tuple[Trainer, Trainer, int]]:
    """Start two trainers in one group, send window 1's request once both joined; yields
    ``(active, standby, child_pid)`` as soon as one of them trains window 1; stops both after."""
    fill_windows(settings.db_url, {1: 40})
    trainers = [Trainer(name, settings, tmp_path) for name in ("a", "b")]
    try:
        for t in trainers:
            _wait_for(
                f"trainer {t.name} to join", lambda t=t: JOINED.search(t.log()), watch=trainers
            )
        _send_request(settings.kafka, 1)

        def active() -> tuple[Trainer, int] | None:
            for trainer in trainers:
                pid = _training(trainer)
                if pid is not None:
                    return trainer, pid
            return None

        found = _wait_for("a trainer to train window 1", active, watch=trainers)
        assert isinstance(found, tuple)
        trainer, child_pid = found
        standby = next(t for t in trainers if t is not trainer)
        yield trainer, standby, child_pid
    finally:
        for trainer in trainers:
            trainer.stop()


def test_standby_trainer_finishes_the_window_of_a_killed_active_trainer(
    tmp_path: Path, broker: EmbeddedBroker, postgres_url: str
) -> None:
    settings = _settings(tmp_path, broker.kafka_settings, postgres_url)
    with _two_trainers(tmp_path, settings) as (active, standby, child_pid):
        active.process.send_signal(signal.SIGKILL)
        active.process.wait(10)
        killed_at = datetime.now()
        _wait_for("the killed trainer's child to exit", lambda: not _alive(child_pid))
        with open_registry(settings.db_url) as registry:
            assert registry.list(kind="short") == [], "the killed job registered a version"
            assert _outcomes(active) == []

            def standby_done() -> bool:
                assert len(_window_shorts(registry)) <= 1, "window 1 registered twice"
                return bool(_outcomes(standby))

            _wait_for("the standby to finish window 1", standby_done, watch=[standby])
            assert _training(standby) is not None, "the standby never trained window 1"
            assert _outcomes(standby) == [("1", "promoted")]
            shorts = _window_shorts(registry)
            assert [v.version for v in shorts] == [1]
            assert _served_shorts(registry) == [1]
        assigned = _assignment_time(standby)
        assert assigned is not None and assigned > killed_at
        print(
            f"standby assigned the partition {(assigned - killed_at).total_seconds():.1f} s "
            f"after the kill (session timeout {SESSION_TIMEOUT_S} s)"
        )

        # the same request delivered again is answered from the registry, not retrained
        _send_request(settings.kafka, 1)
        _wait_for("the repeated request's outcome", lambda: len(_outcomes(standby)) == 2)
        assert _outcomes(standby)[1] == ("1", "duplicate")
        with open_registry(settings.db_url) as registry:
            assert [v.version for v in registry.list(kind="short")] == [1]


def test_a_paused_trainer_presumed_dead_does_not_promote_the_window_again(
    tmp_path: Path, broker: EmbeddedBroker, postgres_url: str
) -> None:
    """SIGSTOP instead of SIGKILL: the group drops the paused trainer and the standby promotes
    window 1; the paused one, resumed, finishes its own training of window 1, registers it and
    then yields (its version is rejected as a duplicate): one version of the window ever serves."""
    settings = _settings(tmp_path, broker.kafka_settings, postgres_url)
    with _two_trainers(tmp_path, settings) as (active, standby, _child):
        active.process.send_signal(signal.SIGSTOP)
        try:
            _wait_for("the standby to finish window 1", lambda: _outcomes(standby), watch=[standby])
            assert _outcomes(standby) == [("1", "promoted")]
        finally:
            active.process.send_signal(signal.SIGCONT)
        _wait_for("the resumed trainer's outcome", lambda: _outcomes(active), watch=[active])
        assert _outcomes(active) == [("1", "duplicate")]
        assert active.process.poll() is None, "the resumed trainer exited"
        with open_registry(settings.db_url) as registry:
            shorts = {v.version: v for v in _window_shorts(registry)}
            assert sorted(shorts) == [1, 2]  # both trained it; only the first counts
            assert shorts[1].status == "candidate"
            assert shorts[2].status == "rejected"
            assert "duplicate" in (shorts[2].status_reason or "")
            assert _served_shorts(registry) == [1]
