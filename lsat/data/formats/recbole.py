"""RecBole "atomic" files: tab-separated with typed headers such as ``user_id:token``.

``<name>.inter`` holds ``user_id, item_id, rating|label, timestamp``; ``<name>.item`` holds
``item_id, movie_title|title, release_year, class`` (``token_seq`` values are space-joined;
``class`` genres are re-joined with ``|``). RecBole's ML-100K has item 267 titled ``unkonwn``
(sic); it is read as ``unknown``. Years that are not four digits are dropped (item 1412's is
``V``, a leftover of the original title's ``(V)`` suffix).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lsat.data.errors import DataFormatError
from lsat.data.formats.fields import RowBuilder
from lsat.data.types import Interaction, Item

__all__ = [
    "parse_header",
    "read_recbole_interactions",
    "read_recbole_items",
    "recbole_interaction_rows",
    "recbole_item_rows",
]

_TITLE_FIELDS = ("movie_title", "title", "item_title")
_TYPO_UNKNOWN = "unkonwn"


def parse_header(line: str) -> list[str]:
    """Field names without their types.

    >>> parse_header("user_id:token\\titem_id:token\\trating:float")
    ['user_id', 'item_id', 'rating']
    """
    return [field.split(":", 1)[0].strip() for field in line.rstrip("\r\n").split("\t")]


def _rows(path: Path | str, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    lines = text.splitlines()
    if not lines:
        raise DataFormatError(path, 1, "header", "", "file is empty")
    header = parse_header(lines[0])
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != len(header):
            raise DataFormatError(
                path, number, "row", line, f"has {len(values)} fields, header has {len(header)}"
            )
        yield number, dict(zip(header, values, strict=True))


def recbole_interaction_rows(path: Path | str, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a ``.inter`` file, rows as ``user_id, item_id, rating|label, timestamp``.

    Whole-number floats (RecBole types ratings and timestamps as ``float``) become ints.
    """
    for number, row in _rows(path, text):
        for key in ("user_id", "item_id", "timestamp"):
            if key not in row:
                raise DataFormatError(path, number, "row", sorted(row), f"missing {key!r}")
        out = {"user_id": row["user_id"], "item_id": row["item_id"]}
        for key in ("rating", "label"):
            if key in row:
                out[key] = _int_text(row[key])
        out["timestamp"] = _int_text(row["timestamp"])
        yield number, out


def recbole_item_rows(path: Path | str, text: str) -> Iterator[dict[str, str]]:
    """Rows of a ``.item`` file as ``item_id, title, genres, year`` strings."""
    for number, row in _rows(path, text):
        title_key = next((k for k in _TITLE_FIELDS if k in row), None)
        if "item_id" not in row or title_key is None:
            raise DataFormatError(path, number, "row", sorted(row), "needs item_id and a title")
        title = row[title_key].strip()
        year = row.get("release_year", "").strip()
        if title == _TYPO_UNKNOWN:
            title = "unknown"
        if not (len(year) == 4 and year.isdigit()):  # "unkonwn", and "V" for item 1412
            year = ""
        genres = "|".join(row.get("class", "").split())
        yield {"item_id": row["item_id"].strip(), "title": title, "genres": genres, "year": year}


def _int_text(value: str) -> str:
    """``"3.0"`` → ``"3"``; anything else unchanged.

    >>> _int_text("874724710.0"), _int_text("3.5"), _int_text("x")
    ('874724710', '3.5', 'x')
    """
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else value.strip()


def read_recbole_interactions(path: Path, *, like_threshold: float) -> list[Interaction]:
    """Interactions from a ``.inter`` file."""
    build = RowBuilder(path, like_threshold)
    text = path.read_text(encoding="utf-8")
    return [
        build(
            n,
            row["user_id"],
            row["item_id"],
            row["timestamp"],
            rating=row.get("rating"),
            label=row.get("label"),
        )
        for n, row in recbole_interaction_rows(path, text)
    ]


def read_recbole_items(path: Path) -> dict[str, Item]:
    """The catalogue from a ``.item`` file."""
    items: dict[str, Item] = {}
    for row in recbole_item_rows(path, path.read_text(encoding="utf-8")):
        extra = {k: row[k] for k in ("genres", "year") if row[k]}
        items[row["item_id"]] = Item(row["item_id"], row["title"], extra)
    return items
