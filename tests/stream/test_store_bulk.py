"""BulkInsert stores exactly what SQLAlchemy's own executemany stores (SQLite and PostgreSQL).

The same rows go in twice — once through ``connection.execute(insert, dicts)``, once through
:class:`~lsat.stream.store.bulk.BulkInsert` under other event ids — and the raw column values
read back at the driver level must match: JSON text, booleans, the insert time's stored form,
NULL features. A row whose event id is stored already is left out, not an error, and ids
follow the order of the rows given (the worker reads recent history by id).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, create_engine
from sqlalchemy.dialects import postgresql, sqlite

from lsat.stream.store import SampleStore
from lsat.stream.store.bulk import BulkInsert
from lsat.stream.store.models import SampleRow

COLUMNS = (
    "event_id",
    "user_id",
    "item_id",
    "timestamp",
    "label",
    "history",
    "window_id",
    "late",
    "source_partition",
    "source_offset",
    "user_likes_before",
    "global_count_before",
)
ROWS = [
    ("a", "u1", "i1", 880000000, 1, {"item_ids": ["7", "9"], "labels": [1, 0]}, 3, True, 0, 5),
    ("b", "u2", "ü é", 880000001, 0, {"item_ids": [], "labels": []}, None, False, None, None),
]
FEATURES = [(4, 10_000_000_000), (None, None)]


def _raw(connection: Any, prefix: str) -> list[tuple[Any, ...]]:
    columns = ", ".join(c for c in (*COLUMNS, "inserted_at") if c != "event_id")
    rows = connection.exec_driver_sql(
        f"SELECT event_id, {columns} FROM samples ORDER BY event_id"
    ).fetchall()
    return [tuple(row[1:]) for row in rows if row[0].startswith(prefix)]


def test_bulk_rows_equal_sqlalchemy_rows_and_conflicts_are_left_out(db_url: str) -> None:
    SampleStore(db_url).close()  # the schema
    engine = create_engine(db_url)
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    table = cast(Table, SampleRow.__table__)
    now = datetime(2026, 12, 1, 1, 2, 3, 456789, tzinfo=UTC)
    full = [(*row, *features) for row, features in zip(ROWS, FEATURES, strict=True)]
    bulk = BulkInsert(table, COLUMNS, ("inserted_at",), "event_id", insert)
    with engine.begin() as connection:
        core = [dict(zip(COLUMNS, ("core-" + r[0], *r[1:]), strict=True)) for r in full]
        connection.execute(insert(table), [{**row, "inserted_at": now} for row in core])
        rows = [("bulk-" + r[0], *r[1:]) for r in full]
        bulk.execute(connection, rows, {"inserted_at": now})
        bulk.execute(connection, [("bulk-a", *full[1][1:])], {"inserted_at": now})  # conflict
        by_core, by_bulk = _raw(connection, "core-"), _raw(connection, "bulk-")
        given = [f"order-{k:02d}-{'zyxwv'[k % 5]}" for k in range(20)]
        shuffled = sorted(given, key=lambda event_id: event_id[-1])  # not alphabetical order
        bulk.execute(connection, [(e, *full[0][1:]) for e in shuffled], {"inserted_at": now})
        by_id = connection.exec_driver_sql(
            "SELECT event_id FROM samples WHERE substr(event_id, 1, 6) = 'order-' ORDER BY id"
        ).fetchall()
    engine.dispose()
    assert [row[0] for row in by_id] == shuffled
    assert len(by_bulk) == 2
    assert by_bulk == by_core
    assert by_bulk[0][1] == "i1", "the conflicting second insert of bulk-a changed nothing"
