"""Amazon review dumps: review JSON lines + metadata JSON lines (``.json`` or ``.json.gz``).

Reviews need ``reviewerID, asin, overall, unixReviewTime``; metadata needs ``asin`` and uses
``title`` (other scalar or list-of-text fields go to ``Item.extra``). The 2014 metadata dumps
are Python literals rather than JSON; those are read with :func:`ast.literal_eval` (no code runs).
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lsat.data.errors import DataFormatError
from lsat.data.formats.fields import RowBuilder
from lsat.data.types import Interaction, Item

__all__ = [
    "is_amazon_file",
    "is_metadata_file",
    "read_amazon_items",
    "read_amazon_reviews",
]

REVIEW_KEYS = ("reviewerID", "asin", "overall", "unixReviewTime")


def is_amazon_file(path: Path) -> bool:
    """Whether the name looks like a JSON-lines dump (``.json``, ``.jsonl``, optionally ``.gz``).

    >>> is_amazon_file(Path("Books_5.json.gz")), is_amazon_file(Path("u.data"))
    (True, False)
    """
    name = path.name.lower().removesuffix(".gz")
    return name.endswith((".json", ".jsonl"))


def is_metadata_file(path: Path) -> bool:
    """Metadata dumps are named ``meta_*`` (e.g. ``meta_Books.json.gz``).

    >>> is_metadata_file(Path("meta_Books.json.gz")), is_metadata_file(Path("Books.json"))
    (True, False)
    """
    return path.name.lower().startswith("meta")


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line, text in enumerate(handle, 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                try:
                    record = ast.literal_eval(text.strip())
                except (ValueError, SyntaxError):
                    raise DataFormatError(
                        path, line, "record", text.strip()[:80], "not JSON"
                    ) from None
            if not isinstance(record, dict):
                raise DataFormatError(path, line, "record", text.strip()[:80], "not an object")
            yield line, record


def read_amazon_reviews(path: Path, *, like_threshold: float) -> list[Interaction]:
    """One interaction per review; ``overall`` is the rating."""
    build = RowBuilder(path, like_threshold)
    rows = []
    for line, record in _records(path):
        missing = [key for key in REVIEW_KEYS if key not in record]
        if missing:
            raise DataFormatError(path, line, "record", sorted(record), f"missing {missing}")
        rows.append(
            build(
                line,
                str(record["reviewerID"]),
                str(record["asin"]),
                str(record["unixReviewTime"]),
                rating=str(record["overall"]),
            )
        )
    return rows


def _as_text(value: object) -> str | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "|".join(value)
    return None


def read_amazon_items(path: Path) -> dict[str, Item]:
    """The catalogue from a metadata dump; records without a title are skipped."""
    items: dict[str, Item] = {}
    for line, record in _records(path):
        if "asin" not in record:
            raise DataFormatError(path, line, "record", sorted(record), "missing 'asin'")
        title = str(record.get("title") or "").strip()
        if not title:
            continue
        item_id = str(record["asin"]).strip()
        extra = {}
        for key, value in record.items():
            text = _as_text(value) if key not in {"asin", "title"} else None
            if text:
                extra[key] = text
        items[item_id] = Item(item_id, title, extra)
    return items
