"""Migrations: a fresh database, an idempotent re-open, a schema equal to the ORM rows, and a
version table of its own so another alembic history in the same database is left alone."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect, text

from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.lifecycle.registry.engine import (
    current_revision,
    head_revision,
    upgrade_to_head,
)
from lsat.adapters.lifecycle.registry.migrations import VERSION_TABLE
from lsat.adapters.lifecycle.registry.models import RegistryBase
from lsat.core.db import create_db_engine

REGISTRY_TABLES = {
    "adapter_versions",
    "adapter_evaluations",
    "registry_aliases",
    "registry_alias_history",
    "adapter_window_scores",
    "adapter_artifacts",
    VERSION_TABLE,
}


def test_fresh_database_is_migrated_to_head(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) == set()
        upgrade_to_head(engine)
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) == REGISTRY_TABLES
    finally:
        engine.dispose()


def test_reopening_a_migrated_database_keeps_its_data(db_url: str) -> None:
    with open_registry(db_url) as first:
        first.register("long", path="/l1", sha256="1" * 64)
        first.set_alias("serving-long", "long", 1, reason="r", actor="t")
    with open_registry(db_url) as second:
        assert str(second.resolve("serving-long").key) == "long/v1"  # type: ignore[union-attr]
        assert second.register("long", path="/l2", sha256="2" * 64).version == 2
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        assert rows == [(head_revision(),)]
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_orm_rows(db_url: str) -> None:
    with open_registry(db_url) as store, store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "include_name": lambda name, kind, _parent: (
                    kind != "table" or name in REGISTRY_TABLES
                ),
            },
        )
        assert compare_metadata(context, RegistryBase.metadata) == []


def test_another_alembic_history_in_the_same_database_is_left_alone(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        with engine.begin() as connection:  # what the stream's own migrations would leave
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
            connection.execute(text("INSERT INTO alembic_version VALUES ('stream_0001')"))
            connection.execute(text("CREATE TABLE stream_samples (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()
    with open_registry(db_url) as store:
        store.register("short", path="/s1", sha256="1" * 64)
        with store.engine.connect() as connection:
            other = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            tables = set(inspect(connection).get_table_names())
    assert other == [("stream_0001",)]
    assert tables == REGISTRY_TABLES | {"alembic_version", "stream_samples"}


def test_sqlite_reads_take_no_write_lock_and_writes_take_it_at_begin(tmp_path: Path) -> None:
    with open_registry(f"sqlite:///{tmp_path / 'r.sqlite'}") as store:
        statements: list[str] = []
        event.listen(
            store.engine,
            "before_cursor_execute",
            lambda _conn, _cursor, sql, *_args: statements.append(sql),
        )
        store.register("short", path="/s1", sha256="1" * 64)
        writes = [s for s in statements if s.startswith("BEGIN")]
        statements.clear()
        store.list()
        store.resolve("serving-short")
        reads = [s for s in statements if s.startswith("BEGIN")]
    assert writes == ["BEGIN IMMEDIATE"]
    assert reads == ["BEGIN DEFERRED", "BEGIN DEFERRED"]
