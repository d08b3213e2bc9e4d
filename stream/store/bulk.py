"""Bulk ``INSERT … ON CONFLICT DO NOTHING`` of many rows with the SQL compiled once.

SQLAlchemy's ``connection.execute(insert, list_of_dicts)`` builds and type-processes every
row's parameters in Python (``construct_params`` and each column's bind processor per row):
in the worker's batch inserts that cost more than SQLite's own work (sampled with py-spy:
~40 % of the time in ``add_events``, the driver's ``executemany`` 23 %). :class:`BulkInsert`
compiles the statement once per dialect, runs the columns' bind processors only where a
column has one (a value shared by every row, such as the insert time, once per call) and hands
the rows to the driver's ``executemany`` through :meth:`Connection.exec_driver_sql`. The SQL
and the stored values are SQLAlchemy's own (the same statement, the same processors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import Connection, Table

__all__ = ["BulkInsert"]

Insert = Callable[[Table], Any]
"""The dialect's ``insert`` (``sqlalchemy.dialects.sqlite.insert`` or the PostgreSQL one)."""


class BulkInsert:
    """``INSERT INTO table (columns…) … ON CONFLICT (conflict) DO NOTHING`` for many rows, or,
    with ``accumulate``, ``DO UPDATE`` adding the new row's values of those columns to the
    stored ones (the rows of one call must then have distinct ``conflict`` values).

    Rows are sequences of the values of ``row_columns`` in that order; ``shared_columns`` take
    one value for every row of a call (:meth:`execute`'s ``shared``).
    """

    def __init__(
        self,
        table: Table,
        row_columns: Sequence[str],
        shared_columns: Sequence[str],
        conflict: str,
        insert: Insert,
        accumulate: Sequence[str] = (),
    ) -> None:
        self.table = table
        self.row_columns = tuple(row_columns)
        self.shared_columns = tuple(shared_columns)
        self.columns = (*self.row_columns, *self.shared_columns)
        self.conflict = conflict
        self.accumulate = tuple(accumulate)
        statement = insert(table)
        if self.accumulate:
            added = {c: table.c[c] + statement.excluded[c] for c in self.accumulate}
            self.statement = statement.on_conflict_do_update(index_elements=[conflict], set_=added)
        else:
            self.statement = statement.on_conflict_do_nothing(index_elements=[conflict])
        self._compiled: dict[str, tuple[str, tuple[int, ...] | None, list[Any]]] = {}

    def _prepare(self, connection: Connection) -> tuple[str, tuple[int, ...] | None, list[Any]]:
        """(SQL, positional order or ``None`` for named parameters, bind processors)."""
        dialect = connection.dialect
        prepared = self._compiled.get(dialect.name)
        if prepared is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=list(self.columns))
            order = None
            if compiled.positional:
                index = {name: k for k, name in enumerate(self.columns)}
                order = tuple(index[name] for name in compiled.positiontup or ())
            processors = [
                self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in self.columns
            ]
            prepared = (str(compiled), order, processors)
            self._compiled[dialect.name] = prepared
        return prepared

    def execute(
        self,
        connection: Connection,
        rows: Sequence[Sequence[Any]],
        shared: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert ``rows`` (in ``connection``'s transaction); rows whose ``conflict`` value is
        stored already are left out by the database."""
        if not rows:
            return
        sql, order, processors = self._prepare(connection)
        width = len(self.row_columns)
        shared = shared or {}
        tail = []
        for k, name in enumerate(self.shared_columns, start=width):
            value, process = shared[name], processors[k]
            tail.append(process(value) if process is not None else value)
        per_row = [(k, p) for k, p in enumerate(processors[:width]) if p is not None]
        copying = connection.dialect.name == "postgresql"  # COPY takes rows in column order
        in_order = copying or order == tuple(range(len(self.columns)))
        params: list[Any] = []
        for row in rows:
            values = [*row, *tail]
            for k, process in per_row:
                values[k] = process(values[k])
            if in_order:
                params.append(tuple(values))
            elif order is not None:
                params.append(tuple([values[k] for k in order]))
            else:
                params.append(dict(zip(self.columns, values, strict=True)))
        if copying:
            self._copy(connection, params)
        else:
            connection.exec_driver_sql(sql, params)

    def _copy(self, connection: Connection, rows: list[Any]) -> None:
        """PostgreSQL: ``COPY`` (psycopg's ``executemany`` sends one statement per row: ~3× the
        client CPU). Plain inserts first try ``COPY`` straight into the table inside a savepoint
        — the usual case, no stored ``conflict`` value — which spares the server a second pass;
        when a row is stored already (a replay after a crash) the savepoint is rolled back and the
        rows go through :meth:`_copy_staged`."""
        driver = connection.connection.driver_connection
        assert driver is not None
        if self.accumulate:
            self._copy_staged(connection, rows)
            return
        quote = connection.dialect.identifier_preparer.quote
        table, columns = quote(self.table.name), ", ".join(quote(c) for c in self.columns)
        with driver.cursor() as cursor:
            cursor.execute("SAVEPOINT lsat_bulk")
            try:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            except UniqueViolation:
                cursor.execute("ROLLBACK TO SAVEPOINT lsat_bulk")
                self._copy_staged(connection, rows)
            else:
                cursor.execute("RELEASE SAVEPOINT lsat_bulk")

    def _copy_staged(self, connection: Connection, rows: list[Any]) -> None:
        """``COPY`` into a session-local staging table, then one
        ``INSERT … SELECT … ON CONFLICT`` in the rows' order (so ids keep arrival order)."""
        quote = connection.dialect.identifier_preparer.quote
        table, columns = quote(self.table.name), ", ".join(quote(c) for c in self.columns)
        staging = f"lsat_bulk_{self.table.name}"
        action = "DO NOTHING"
        if self.accumulate:
            added = [quote(c) for c in self.accumulate]
            action = "DO UPDATE SET " + ", ".join(
                f"{c} = {table}.{c} + EXCLUDED.{c}" for c in added
            )
        on_conflict = f"ON CONFLICT ({quote(self.conflict)}) {action}"
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
                f"SELECT 0 AS lsat_order, {columns} FROM {table} WITH NO DATA"
            )
            with cursor.copy(f"COPY {staging} (lsat_order, {columns}) FROM STDIN") as copy:
                for order, row in enumerate(rows):
                    copy.write_row((order, *row))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} "
                f"ORDER BY lsat_order {on_conflict}"
            )
            cursor.execute(f"TRUNCATE {staging}")
