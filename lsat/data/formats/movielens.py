"""GroupLens MovieLens originals: ML-100K (``u.data``/``u.item``) and ML-1M (``*.dat``, ``::``)."""

from __future__ import annotations

import re
from pathlib import Path

from lsat.data.errors import DataFormatError
from lsat.data.formats.fields import RowBuilder
from lsat.data.types import Interaction, Item

__all__ = [
    "ML100K_GENRES",
    "read_ml1m_interactions",
    "read_ml1m_items",
    "read_ml100k_interactions",
    "read_ml100k_items",
]

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""Genre flag order of ``u.item`` (as listed in ML-100K's ``u.genre``)."""

_YEAR_SUFFIX = re.compile(r"\((\d{4})\)\s*$")


def _lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="latin-1")
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _split(path: Path, line: int, text: str, sep: str, expected: int) -> list[str]:
    parts = text.split(sep)
    if len(parts) < expected:
        raise DataFormatError(
            path, line, "row", text, f"expected {expected} {sep!r}-separated fields"
        )
    return parts


def read_ml100k_interactions(path: Path, *, like_threshold: float) -> list[Interaction]:
    """``u.data``: ``user \\t item \\t rating \\t timestamp``."""
    build = RowBuilder(path, like_threshold)
    rows = []
    for line, text in _lines(path):
        user, item, rating, ts = _split(path, line, text, "\t", 4)[:4]
        rows.append(build(line, user, item, ts, rating=rating))
    return rows


def read_ml100k_items(path: Path) -> dict[str, Item]:
    """``u.item``: ``id|title|release date|video date|url|19 genre flags`` (latin-1)."""
    items: dict[str, Item] = {}
    for line, text in _lines(path):
        parts = _split(path, line, text, "|", 5 + len(ML100K_GENRES))
        item_id, title, release = parts[0].strip(), parts[1].strip(), parts[2].strip()
        flags = parts[5 : 5 + len(ML100K_GENRES)]
        if any(flag.strip() not in {"0", "1"} for flag in flags):
            raise DataFormatError(path, line, "genre flags", "|".join(flags), "expected 0/1")
        genres = [g for g, flag in zip(ML100K_GENRES, flags, strict=True) if flag.strip() == "1"]
        extra = {"genres": "|".join(genres)} if genres else {}
        year = release[-4:] if release[-4:].isdigit() else _year_from_title(title)
        if year:
            extra["year"] = year
        items[item_id] = Item(item_id, title, extra)
    return items


def read_ml1m_interactions(path: Path, *, like_threshold: float) -> list[Interaction]:
    """``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``."""
    build = RowBuilder(path, like_threshold)
    rows = []
    for line, text in _lines(path):
        user, item, rating, ts = _split(path, line, text, "::", 4)[:4]
        rows.append(build(line, user, item, ts, rating=rating))
    return rows


def read_ml1m_items(path: Path) -> dict[str, Item]:
    """``movies.dat``: ``MovieID::Title::Genres`` (latin-1, genres ``|``-joined)."""
    items: dict[str, Item] = {}
    for line, text in _lines(path):
        item_id, title, genres = (part.strip() for part in _split(path, line, text, "::", 3)[:3])
        extra = {"genres": genres} if genres else {}
        year = _year_from_title(title)
        if year:
            extra["year"] = year
        items[item_id] = Item(item_id, title, extra)
    return items


def _year_from_title(title: str) -> str:
    """``"Toy Story (1995)"`` → ``"1995"``.

    >>> _year_from_title("Toy Story (1995)"), _year_from_title("unknown")
    ('1995', '')
    """
    match = _YEAR_SUFFIX.search(title)
    return match.group(1) if match else ""
