"""A store created before a nullable column existed gets it in place; old rows read NULL."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text

from lsat.data.types import Interaction
from lsat.stream.errors import StreamError
from lsat.stream.store import IngestItem, SampleStore
from lsat.stream.store.schema import add_missing_columns


def columns(store: SampleStore, table: str) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(table)}


def test_an_old_store_gains_the_payload_hash_column(db_url: str) -> None:
    store = SampleStore(db_url)
    store.ingest(IngestItem(Interaction("u", "old", 900_000_000, 1)))
    with store.engine.begin() as conn:  # as an older version created it (before migrations)
        conn.execute(text("ALTER TABLE stream_interactions DROP COLUMN payload_sha256"))
        conn.execute(text("DROP TABLE alembic_version_stream"))
    store.close()
    assert "payload_sha256" not in columns(SampleStore(db_url, create=False), "stream_interactions")

    store = SampleStore(db_url)
    assert "payload_sha256" in columns(store, "stream_interactions")
    store.ingest(IngestItem(Interaction("u", "new", 900_000_001, 1), payload_sha256="ab" * 32))
    with store.transaction() as tx:
        found = tx.stored_events(["u:old:900000000", "u:new:900000001", "u:none:1"])
    assert {k: e.payload_sha256 for k, e in found.items()} == {
        "u:old:900000000": None,
        "u:new:900000001": "ab" * 32,
    }
    assert add_missing_columns(store.engine, MetaData()) == []  # nothing left to add
    store.close()


def test_a_missing_not_null_column_needs_a_migration(db_url: str) -> None:
    store = SampleStore(db_url)
    wanted = MetaData()
    Table(
        "windows",
        wanted,
        Column("id", Integer, primary_key=True),
        Column("shard", String(8), nullable=False),
    )
    with pytest.raises(StreamError, match="'windows' lacks NOT NULL column 'shard'"):
        add_missing_columns(store.engine, wanted)
    store.close()
