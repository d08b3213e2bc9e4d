"""``column IN (values)`` for long value lists, the cheap way for each database.

SQLAlchemy renders ``in_(values)`` as one bound parameter per value, and building those costs
more than the lookups once a batch asks for thousands of ids. On PostgreSQL one array parameter
does it (``column = ANY(:values)``), on SQLite one JSON text (``column IN (SELECT value FROM
json_each(:values))``, still an index lookup per value); elsewhere the values go in chunks of
:data:`CHUNK`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["CHUNK", "member_of"]

CHUNK = 500
"""Values per ``IN`` list where arrays are not used."""


def member_of(column: Any, values: Sequence[str], dialect: str) -> list[ColumnElement[bool]]:
    """Conditions that together select the rows whose ``column`` is among ``values`` (one
    query each; none for no values).

    >>> from sqlalchemy import column
    >>> [str(c) for c in member_of(column("id"), ["a", "b"], "postgresql")]
    ['id = ANY (:values)']
    >>> len(member_of(column("id"), [str(k) for k in range(1200)], "sqlite"))
    1
    >>> len(member_of(column("id"), [str(k) for k in range(1200)], "mysql"))
    3
    """
    if not values:
        return []
    if dialect == "postgresql":
        return [column == any_(bindparam("values", list(values), type_=ARRAY(String)))]
    if dialect == "sqlite":
        listed = func.json_each(bindparam("values", json.dumps(list(values)))).table_valued("value")
        return [column.in_(select(listed.c.value))]
    return [column.in_(values[start : start + CHUNK]) for start in range(0, len(values), CHUNK)]
