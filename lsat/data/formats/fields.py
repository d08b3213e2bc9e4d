"""Field parsers shared by the format readers; each error names file, line and bad value."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from lsat.data.errors import DataFormatError
from lsat.data.types import Interaction

__all__ = [
    "RowBuilder",
    "natural_key",
    "parse_label",
    "parse_rating",
    "parse_timestamp",
    "sort_interactions",
]


def parse_timestamp(path: Path | str, line: int, value: str) -> int:
    """Unix seconds from an int (or whole float) string.

    >>> parse_timestamp("f", 1, "874724710"), parse_timestamp("f", 1, "874724710.0")
    (874724710, 874724710)
    >>> parse_timestamp("f", 3, "yesterday")
    Traceback (most recent call last):
    lsat.data.errors.DataFormatError: f:3: bad timestamp 'yesterday' (expected unix seconds)
    """
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise DataFormatError(path, line, "timestamp", value, "expected unix seconds")
    return int(number)


def parse_rating(path: Path | str, line: int, value: str) -> float:
    """A finite rating.

    >>> parse_rating("f", 2, " 4 ")
    4.0
    >>> parse_rating("f", 2, "nan")
    Traceback (most recent call last):
    lsat.data.errors.DataFormatError: f:2: bad rating 'nan' (expected a finite number)
    """
    try:
        rating = float(value)
    except ValueError:
        rating = math.nan
    if not math.isfinite(rating):
        raise DataFormatError(path, line, "rating", value, "expected a finite number")
    return rating


def parse_label(path: Path | str, line: int, value: str) -> int:
    """A 0/1 label (``"1"``, ``"0"``, ``"1.0"``, ``"true"``, ``"false"``).

    >>> parse_label("f", 1, "1.0"), parse_label("f", 1, "false")
    (1, 0)
    >>> parse_label("f", 9, "2")
    Traceback (most recent call last):
    lsat.data.errors.DataFormatError: f:9: bad label '2' (expected 0 or 1)
    """
    text = value.strip().lower()
    if text in {"1", "1.0", "true"}:
        return 1
    if text in {"0", "0.0", "false"}:
        return 0
    raise DataFormatError(path, line, "label", value, "expected 0 or 1")


def natural_key(identifier: str) -> tuple[int, int, str]:
    """Sort key putting numeric ids in numeric order, then other ids in text order.

    >>> sorted(["10", "9", "b", "a"], key=natural_key)
    ['9', '10', 'a', 'b']
    """
    if identifier.isdigit():
        return (0, int(identifier), identifier)
    return (1, 0, identifier)


def sort_interactions(interactions: Iterable[Interaction]) -> list[Interaction]:
    """Interactions sorted by (timestamp, user_id, item_id), ids in natural order."""
    return sorted(
        interactions,
        key=lambda it: (it.timestamp, natural_key(it.user_id), natural_key(it.item_id)),
    )


class RowBuilder:
    """Turns one raw row into an :class:`Interaction`, labelling by rating or by a 0/1 label.

    >>> build = RowBuilder("f.csv", like_threshold=3.0)
    >>> build(2, "u1", "i1", "874724710", rating="4")
    Interaction(user_id='u1', item_id='i1', timestamp=874724710, label=1, rating=4.0, event_id='')
    >>> build(3, "", "i1", "1", rating="4")
    Traceback (most recent call last):
    lsat.data.errors.DataFormatError: f.csv:3: bad user_id '' (empty id)
    """

    def __init__(self, path: Path | str, like_threshold: float) -> None:
        self.path = path
        self.like_threshold = like_threshold

    def __call__(
        self,
        line: int,
        user_id: str,
        item_id: str,
        timestamp: str,
        *,
        rating: str | None = None,
        label: str | None = None,
        event_id: str = "",
    ) -> Interaction:
        user_id, item_id = user_id.strip(), item_id.strip()
        if not user_id:
            raise DataFormatError(self.path, line, "user_id", user_id, "empty id")
        if not item_id:
            raise DataFormatError(self.path, line, "item_id", item_id, "empty id")
        ts = parse_timestamp(self.path, line, timestamp)
        value = None if rating is None else parse_rating(self.path, line, rating)
        if label is not None:
            decided = parse_label(self.path, line, label)
        elif value is not None:
            decided = int(value > self.like_threshold)
        else:
            raise DataFormatError(self.path, line, "row", "", "needs a rating or a label")
        return Interaction(user_id, item_id, ts, decided, value, event_id.strip())
