"""The stream store's alembic migrations: a fresh store, a re-open, a schema equal to the ORM
rows, a store created before migrations (create_all) completed and stamped, and the registry's
history beside it in the same database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.lifecycle.registry.migrations import VERSION_TABLE as REGISTRY_VERSIONS
from lsat.core.db import create_db_engine
from lsat.data.types import Interaction
from lsat.stream.store import IngestItem, SampleStore
from lsat.stream.store.migrations import STORE_MIGRATIONS, VERSION_TABLE
from lsat.stream.store.models import Base

STORE_TABLES = set(Base.metadata.tables)


def _differences(store: SampleStore) -> list[object]:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "include_name": lambda name, kind, _parent: kind != "table" or name in STORE_TABLES,
            },
        )
        return compare_metadata(context, Base.metadata)


def _item(event_id: str) -> IngestItem:
    return IngestItem(Interaction("u1", f"i-{event_id}", 100, 1, event_id=event_id))


def test_a_fresh_store_is_migrated_to_head_and_matches_the_models(db_url: str) -> None:
    store = SampleStore(db_url)
    try:
        assert STORE_MIGRATIONS.current(store.engine) == STORE_MIGRATIONS.head()
        assert _differences(store) == []
        assert store.ingest(_item("e1")) is True
    finally:
        store.close()
    again = SampleStore(db_url)  # re-open: nothing to do, data kept
    try:
        assert again.count_interactions() == 1
    finally:
        again.close()


def test_a_store_created_before_migrations_is_completed_and_stamped(db_url: str) -> None:
    engine = create_db_engine(db_url)  # what create_all left, minus a later table and column
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE user_like_counts"))
            connection.execute(text("ALTER TABLE stream_interactions DROP COLUMN payload_sha256"))
            connection.execute(
                text("INSERT INTO stream_state (name, data, updated_at) VALUES ('x', '{}', :t)"),
                {"t": "2026-01-01 00:00:00"},
            )
    finally:
        engine.dispose()
    store = SampleStore(db_url)
    try:
        assert STORE_MIGRATIONS.current(store.engine) == STORE_MIGRATIONS.head()
        names = set(inspect(store.engine).get_table_names())
        assert {"user_like_counts", VERSION_TABLE} <= names
        columns = {c["name"] for c in inspect(store.engine).get_columns("stream_interactions")}
        assert "payload_sha256" in columns
        assert store.load_state("x") == {}
    finally:
        store.close()


def test_the_registry_history_lives_beside_the_store_history(db_url: str) -> None:
    store = SampleStore(db_url)
    try:
        with open_registry(db_url) as registry:
            registry.register("short", path="/s1", sha256="1" * 64)
        with store.engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            ours = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        assert {VERSION_TABLE, REGISTRY_VERSIONS} <= tables
        assert ours == [(STORE_MIGRATIONS.head(),)]
    finally:
        store.close()
