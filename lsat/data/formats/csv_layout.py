"""Our CSV layout: ``interactions.csv`` (+ optional ``items.csv``) in one folder.

``interactions.csv`` columns: ``user_id, item_id, rating|label, timestamp`` (an ``event_id``
column is used when present; other extra columns are ignored). ``items.csv`` columns:
``item_id, title`` and any optional fields (genres, year, ...) which land in ``Item.extra``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from lsat.data.errors import DataFormatError
from lsat.data.formats.fields import RowBuilder
from lsat.data.types import Interaction, Item

__all__ = [
    "INTERACTIONS_FILE",
    "ITEMS_FILE",
    "read_csv_interactions",
    "read_csv_items",
    "write_csv_layout",
]

INTERACTIONS_FILE = "interactions.csv"
ITEMS_FILE = "items.csv"


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row as dict) for every non-blank data row; checks the column count."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise DataFormatError(path, 1, "header", "", "file is empty")
        header = [name.strip() for name in header]
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataFormatError(
                    path,
                    reader.line_num,
                    "row",
                    ",".join(row),
                    f"has {len(row)} fields, header has {len(header)}",
                )
            yield reader.line_num, dict(zip(header, row, strict=True))


def _require(path: Path, header: set[str], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in header]
    if missing:
        raise DataFormatError(path, 1, "header", sorted(header), f"missing column(s) {missing}")


def _header(path: Path) -> set[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        first = next(csv.reader(handle), [])
    return {name.strip() for name in first}


def read_csv_interactions(path: Path, *, like_threshold: float) -> list[Interaction]:
    """Read ``interactions.csv``; a ``label`` column is used directly, else ``rating``."""
    header = _header(path)
    _require(path, header, ("user_id", "item_id", "timestamp"))
    if "label" not in header and "rating" not in header:
        raise DataFormatError(path, 1, "header", sorted(header), "needs a rating or label column")
    build = RowBuilder(path, like_threshold)
    has_label, has_rating, has_event = "label" in header, "rating" in header, "event_id" in header
    return [
        build(
            line,
            row["user_id"],
            row["item_id"],
            row["timestamp"],
            rating=row["rating"] if has_rating and row["rating"].strip() else None,
            label=row["label"] if has_label else None,
            event_id=row["event_id"] if has_event else "",
        )
        for line, row in _rows(path)
    ]


def read_csv_items(path: Path) -> dict[str, Item]:
    """Read ``items.csv`` into a catalogue; optional non-empty fields go to ``Item.extra``."""
    _require(path, _header(path), ("item_id", "title"))
    items: dict[str, Item] = {}
    for line, row in _rows(path):
        item_id = row.pop("item_id").strip()
        if not item_id:
            raise DataFormatError(path, line, "item_id", item_id, "empty id")
        if item_id in items:
            raise DataFormatError(path, line, "item_id", item_id, "duplicate item")
        title = row.pop("title").strip()
        extra = {key: value for key, value in row.items() if value.strip()}
        items[item_id] = Item(item_id, title, extra)
    return items


def _number_text(value: float) -> str:
    """``4.0`` → ``"4"``, ``3.5`` → ``"3.5"``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write_csv_layout(
    folder: Path, interactions: Sequence[Interaction], items: Sequence[Item]
) -> None:
    """Write ``interactions.csv`` and ``items.csv`` into ``folder`` (which must exist).

    Ratings are written when every interaction has one, else the 0/1 labels. Item columns are
    ``item_id, title`` then the union of the ``extra`` keys in first-seen order.
    """
    with_rating = all(it.rating is not None for it in interactions)
    with (folder / INTERACTIONS_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["user_id", "item_id", "rating" if with_rating else "label", "timestamp"])
        for it in interactions:
            value = _number_text(it.rating) if with_rating and it.rating is not None else it.label
            writer.writerow([it.user_id, it.item_id, value, it.timestamp])
    extra_keys = list(dict.fromkeys(key for item in items for key in item.extra))
    with (folder / ITEMS_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["item_id", "title", *extra_keys])
        for item in items:
            writer.writerow(
                [item.item_id, item.title, *(item.extra.get(k, "") for k in extra_keys)]
            )
