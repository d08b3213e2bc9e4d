"""Fixtures shared by the whole suite: dataset location, database URLs, the tansu broker.

Subsystem fixtures (tiny models, serving adapters) live in the conftest of their folder. The
session tansu broker lives here because the stream and the trainer tests both use it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from needs import IN_CI, missing

from lsat.core.settings import KafkaSettings, Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LSAT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
POSTGRES_ADMIN_URL = os.environ.get(
    "LSAT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def dataset_dir(name: str) -> Path:
    """A dataset under ../shared/data, else :func:`needs.missing` says why."""
    path = SHARED_DATA / name
    if not (path / "interactions.csv").exists():
        missing(f"{path} not found: tests read {name} from ../shared/data (not in the repo)")
    return path


def project_cache_dir() -> Path:
    """The project's cache folder (``$LSAT_HOME/cache``, default ``.lsat/cache`` in the repo)."""
    home = Settings.from_env().home
    return (home if home.is_absolute() else REPO_ROOT / home) / "cache"


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """../shared/data/ml-100k, else the project's fetcher (``lsat.data.fetch``) downloads it
    once into the project cache, as ``lsat up`` does on a fresh clone."""
    if (SHARED_DATA / "ml-100k" / "interactions.csv").exists():
        return SHARED_DATA / "ml-100k"
    from lsat.data.errors import FetchError
    from lsat.data.fetch import fetch_movielens_100k

    try:
        return fetch_movielens_100k(project_cache_dir())
    except FetchError as exc:
        missing(f"no ml-100k: not under {SHARED_DATA} and the fetcher failed: {exc}")


@pytest.fixture(scope="session")
def ml1m_collm_dir() -> Path:
    """../shared/data/ml-1m-collm (a processed slice no fetcher provides)."""
    return dataset_dir("ml-1m-collm")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """Admin URL of the local PostgreSQL server, or skip when it does not answer."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except Exception as exc:  # pragma: no cover - depends on the machine
        if IN_CI:
            raise
        missing(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    finally:
        engine.dispose()
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy

    name = f"lsat_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = postgres_server_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test once on a SQLite file and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lsat.sqlite'}"
    return request.getfixturevalue("postgres_url")


# --- one real tansu broker per test session (stream and trainer tests) -------------------


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running :class:`lsat.stream.broker.EmbeddedBroker` with the project topics (2
    partitions)."""
    from lsat.stream.broker import BrokerError, EmbeddedBroker, find_tansu, free_port

    try:
        find_tansu()
    except BrokerError as exc:
        missing(f"no tansu broker binary: {exc}")
    log_path: Path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    broker = EmbeddedBroker(KafkaSettings(partitions=2), port=free_port(), log_path=log_path)
    with broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_settings(tansu_broker: object) -> KafkaSettings:
    """KafkaSettings pointing at the session broker."""
    return tansu_broker.kafka_settings  # type: ignore[attr-defined]


@pytest.fixture
def fresh_kafka(kafka_settings: KafkaSettings) -> KafkaSettings:
    """KafkaSettings with topic names unique to this test, created on the session broker."""
    import uuid
    from dataclasses import replace

    from lsat.core.settings import TopicNames
    from lsat.stream.topics import ensure_topics

    tag = uuid.uuid4().hex[:8]
    topics = TopicNames(*(f"{name}.{tag}" for name in _topic_fields(TopicNames())))
    settings = replace(kafka_settings, topics=topics)
    ensure_topics(settings)
    return settings


def _topic_fields(topics: object) -> list[str]:
    from dataclasses import astuple

    return list(astuple(topics))  # type: ignore[arg-type]


@pytest.fixture
def consume() -> object:
    """The :func:`consume_all` helper (fixtures are how tests reach conftest helpers)."""
    return consume_all


def consume_all(
    settings: KafkaSettings, topic: str, expected: int, timeout_s: float = 30.0
) -> list[object]:
    """Read ``topic`` from the beginning until ``expected`` records arrived (or time is up).

    Counting records instead of trusting ListOffsets "latest" (tansu under-reports it).
    """
    import time

    from kafka import KafkaConsumer

    from lsat.stream.kafka_client import kafka_python_kwargs

    consumer = KafkaConsumer(
        topic,
        **kafka_python_kwargs(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    records: list[object] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


@pytest.fixture(scope="session")
def live_system(tmp_path_factory: pytest.TempPathFactory, ml100k_dir: Path) -> object:
    """ONE live run (broker, worker, trainer, scorer on the tiny Llama, Prometheus when
    installed) shared by tests/test_end_to_end.py and tests/deploy/test_live_dashboard.py, once
    per test run also under pytest-xdist; a :class:`live_system.LiveResult`, everything already
    stopped (see tests/live_system.py)."""
    from live_system import run_live_system

    if "PYTEST_XDIST_WORKER" not in os.environ:
        return run_live_system(tmp_path_factory.mktemp("live"), ml100k_dir)
    # under pytest-xdist (./run test): the first worker to ask runs it, the other waits and
    # reads its result from the run's shared temporary folder
    import fcntl
    import pickle

    shared = tmp_path_factory.getbasetemp().parent
    with (shared / "live_system.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = shared / "live_system.pickle"
        if saved.exists():
            return pickle.loads(saved.read_bytes())
        result = run_live_system(tmp_path_factory.mktemp("live"), ml100k_dir)
        saved.write_bytes(pickle.dumps(result))
        return result
