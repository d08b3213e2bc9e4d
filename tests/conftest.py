"""Fixtures shared by the whole suite: dataset location and database URLs.

Subsystem fixtures (tiny models, the tansu broker) live in the conftest of their folder.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LSAT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
POSTGRES_ADMIN_URL = os.environ.get(
    "LSAT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def dataset_dir(name: str) -> Path:
    """A dataset under ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not (path / "interactions.csv").exists():
        pytest.skip(f"{path} not found: tests read MovieLens from ../shared/data (not in the repo)")
    return path


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """../shared/data/ml-100k (skips when absent)."""
    return dataset_dir("ml-100k")


@pytest.fixture(scope="session")
def ml1m_collm_dir() -> Path:
    """../shared/data/ml-1m-collm (skips when absent)."""
    return dataset_dir("ml-1m-collm")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """Admin URL of the local PostgreSQL server, or skip when it does not answer."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except Exception as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
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
