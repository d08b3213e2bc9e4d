"""Validate raw topic messages into :class:`Interaction` / :class:`Item`, or a dead letter.

Every rejection raises :class:`~lsat.stream.errors.InvalidEvent` with a stable ``reason_code``
(the label of the ``events`` metric and the DLQ record) and a detail that echoes the bad value.

>>> ev = parse_interaction(b'{"user_id": 7, "item_id": "i9", "rating": 4, "timestamp": 9e8}',
...                        now_s=1e9)
>>> ev
Interaction(user_id='7', item_id='i9', timestamp=900000000, label=1, rating=4.0, event_id='')
>>> ev.key()
'7:i9:900000000'
>>> parse_interaction(b'{"user_id": "u", "item_id": "i", "label": 2, "timestamp": 9e8}')
Traceback (most recent call last):
...
lsat.stream.errors.InvalidEvent: bad_label: label must be 0 or 1, got 2
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from lsat.data.types import Interaction, Item
from lsat.stream.dead_letter import DeadLetter
from lsat.stream.errors import InvalidEvent

__all__ = [
    "EARLIEST_TIMESTAMP_S",
    "MAX_EVENT_KEY_CHARS",
    "MAX_FUTURE_S",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "REASON_CODES",
    "DeadLetter",
    "parse_interaction",
    "parse_item",
]

EARLIEST_TIMESTAMP_S = 631_152_000
"""1990-01-01T00:00:00Z: anything older is a unit or clock error."""
MAX_FUTURE_S = 86_400
"""An event may be at most one day ahead of the receiver's clock (catches milliseconds)."""
MAX_ID_CHARS = 255
"""Longest id (the store's id columns hold 255 characters)."""
MAX_EVENT_KEY_CHARS = 255
"""Longest event key, explicit or derived as ``user:item:timestamp`` (the store's unique key)."""
MAX_TEXT_CHARS = 4096
_CONTROLS = frozenset(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])
_ID_FORBIDDEN = frozenset(":") | _CONTROLS
"""Not allowed in ids: the key separator and C0/C1 control characters (NUL, newline, …)."""

REASON_CODES = (
    "null_value",
    "not_bytes",
    "too_large",
    "not_utf8",
    "not_json",
    "duplicate_key",
    "not_object",
    "missing_field",
    "bad_id_type",
    "empty_id",
    "id_too_long",
    "bad_id_chars",
    "invalid_unicode",
    "bad_text_chars",
    "bad_event_id",
    "no_rating_or_label",
    "both_rating_and_label",
    "bad_rating",
    "rating_not_finite",
    "rating_out_of_range",
    "bad_label",
    "bad_timestamp",
    "timestamp_not_finite",
    "timestamp_negative",
    "timestamp_too_old",
    "timestamp_in_future",
    "bad_title",
    "bad_field",
)
"""Every ``reason_code`` this module can raise."""


def _show(value: Any, limit: int = 60) -> str:
    """repr() of a bad value, shortened so a huge string cannot flood logs."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…(+{len(text) - limit} chars)"


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)  # in C; a key given twice shows as fewer keys than pairs
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidEvent("duplicate_key", f"key {_show(key)} appears twice")
            seen.add(key)
    return obj


def _valid_unicode(name: str, text: str) -> str:
    """``text`` unless it holds a lone surrogate (JSON allows ``"\\ud800"``; UTF-8 does not)."""
    if text.isascii():  # the common case, answered without encoding
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(
            "invalid_unicode", f"{name} {_show(text)} has a lone surrogate at char {exc.start}"
        ) from None
    return text


def _storable(name: str, text: str) -> str:
    """``text`` unless a SQL store cannot hold it (a lone surrogate, a NUL character)."""
    _valid_unicode(name, text)
    if "\x00" in text:
        raise InvalidEvent("bad_text_chars", f"{name} {_show(text)} contains NUL")
    return text


_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicates)
"""Built once: ``json.loads`` with a hook builds a decoder per call (~2 % of the worker)."""


def _decode_object(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    if raw is None:
        raise InvalidEvent("null_value", "message has no value (a tombstone)")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise InvalidEvent("not_bytes", f"payload must be bytes, got {type(raw).__name__}")
    if len(raw) > max_bytes:
        raise InvalidEvent("too_large", f"payload has {len(raw)} bytes, limit is {max_bytes}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"payload is not UTF-8 ({exc.reason} at byte {exc.start})"
        raise InvalidEvent("not_utf8", detail) from None
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent("not_json", f"{exc.msg} at char {exc.pos} of {_show(text)}") from None
    except RecursionError:
        raise InvalidEvent("not_json", f"nesting too deep in {_show(text)}") from None
    except ValueError as exc:  # e.g. an integer literal beyond int's digit limit
        raise InvalidEvent("not_json", f"{exc} in {_show(text)}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"payload must be a JSON object, got {_show(obj)}")
    return obj


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _not_finite(value: int | float) -> bool:
    """Not ``math.isfinite``; an integer too large for a float counts as infinite (inlined
    where it runs per event: ``type(v) is int`` first, no call).

    >>> _not_finite(float("nan")), _not_finite(10**400), _not_finite(5)
    (True, True, False)
    """
    return value.bit_length() > 1023 if type(value) is int else not math.isfinite(value)


def _identifier(obj: dict[str, Any], name: str) -> str:
    if name not in obj or obj[name] is None:
        raise InvalidEvent("missing_field", f"{name} is required")
    value = obj[name]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidEvent("bad_id_type", f"{name} must be a string or integer, got {_show(value)}")
    # checked before strip(), which eats \x85, \x1c, …; printable ASCII without ":" (the
    # common case) skips the per-character checks
    if not (value.isascii() and value.isprintable() and ":" not in value):
        _valid_unicode(name, value)
        if bad := _ID_FORBIDDEN.intersection(value):
            raise InvalidEvent("bad_id_chars", f"{name} {_show(value)} contains {sorted(bad)}")
    value = value.strip()
    if not value:
        raise InvalidEvent("empty_id", f"{name} is empty: {_show(obj[name])}")
    if len(value) > MAX_ID_CHARS:
        raise InvalidEvent("id_too_long", f"{name} has {len(value)} chars, limit {MAX_ID_CHARS}")
    return value


def _event_id(obj: dict[str, Any]) -> str:
    value = obj.get("event_id")
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise InvalidEvent(
            "bad_event_id", f"event_id must be a non-empty string ≤ {MAX_ID_CHARS}: {_show(value)}"
        )
    if not (value.isascii() and value.isprintable()):  # else: the per-character checks
        _valid_unicode("event_id", value)
        if bad := _CONTROLS.intersection(value):
            raise InvalidEvent("bad_event_id", f"event_id {_show(value)} contains {sorted(bad)}")
    return value.strip()


def _timestamp(obj: dict[str, Any], now_s: float) -> int:
    if "timestamp" not in obj or obj["timestamp"] is None:
        raise InvalidEvent("missing_field", "timestamp is required")
    value = obj["timestamp"]
    if not _is_number(value):
        raise InvalidEvent("bad_timestamp", f"timestamp must be unix seconds, got {_show(value)}")
    if value.bit_length() > 1023 if type(value) is int else not math.isfinite(value):
        raise InvalidEvent("timestamp_not_finite", f"timestamp is {_show(value)}")
    if value < 0:
        raise InvalidEvent("timestamp_negative", f"timestamp is negative: {value}")
    if value < EARLIEST_TIMESTAMP_S:
        raise InvalidEvent("timestamp_too_old", f"timestamp {value} is before 1990-01-01")
    if value > now_s + MAX_FUTURE_S:
        raise InvalidEvent(
            "timestamp_in_future", f"timestamp {value} is more than a day after now ({now_s:.0f})"
        )
    return int(value)


def _label_and_rating(
    obj: dict[str, Any], rating_range: tuple[float, float], like_threshold: float
) -> tuple[int, float | None]:
    has_rating = obj.get("rating") is not None
    has_label = obj.get("label") is not None
    if has_rating == has_label:
        code = "both_rating_and_label" if has_rating else "no_rating_or_label"
        raise InvalidEvent(code, "exactly one of rating and label must be given")
    if has_label:
        label = obj["label"]
        if not (isinstance(label, int) and not isinstance(label, bool)) or label not in (0, 1):
            raise InvalidEvent("bad_label", f"label must be 0 or 1, got {_show(label)}")
        return label, None
    rating = obj["rating"]
    if not _is_number(rating):
        raise InvalidEvent("bad_rating", f"rating must be a number, got {_show(rating)}")
    if rating.bit_length() > 1023 if type(rating) is int else not math.isfinite(rating):
        raise InvalidEvent("rating_not_finite", f"rating is {_show(rating)}")
    low, high = rating_range
    if not low <= rating <= high:
        raise InvalidEvent("rating_out_of_range", f"rating {rating} is outside [{low}, {high}]")
    return int(rating > like_threshold), float(rating)


def parse_interaction(
    raw: bytes | None,
    *,
    max_bytes: int = 16384,
    now_s: float | None = None,
    like_threshold: float = 3.0,
    rating_range: tuple[float, float] = (0.0, 5.0),
) -> Interaction:
    """Validate one ``interactions`` message; label = rating > like_threshold, or the 0/1 label.

    ``now_s`` defaults to the wall clock and only bounds how far in the future an event may be.
    Unknown extra fields are ignored; a null value (a tombstone) is ``null_value``.
    """
    obj = _decode_object(raw, max_bytes)
    user_id = _identifier(obj, "user_id")
    item_id = _identifier(obj, "item_id")
    label, rating = _label_and_rating(obj, rating_range, like_threshold)
    timestamp = _timestamp(obj, time.time() if now_s is None else now_s)
    interaction = Interaction(user_id, item_id, timestamp, label, rating, _event_id(obj))
    long_ids = len(user_id) + len(item_id) > MAX_EVENT_KEY_CHARS - 22  # ":" ":" and 20 digits
    if (
        long_ids
        and not interaction.event_id
        and len(key := interaction.key()) > MAX_EVENT_KEY_CHARS
    ):
        raise InvalidEvent(
            "id_too_long",
            f"event key {_show(key)} has {len(key)} chars, limit {MAX_EVENT_KEY_CHARS}: "
            "shorter ids or an explicit event_id",
        )
    return interaction


def _extra_value(name: str, value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif _is_number(value):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = "|".join(value)
    else:
        raise InvalidEvent("bad_field", f"field {_show(name)} must be text, number or list of text")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidEvent("bad_field", f"field {_show(name)} has {len(text)} chars")
    return _storable(f"field {_show(name)}", text)


def parse_item(raw: bytes | None, *, max_bytes: int = 16384) -> Item:
    """Validate one ``items`` message; other fields become ``extra`` text (lists joined by ``|``).

    >>> parse_item(b'{"item_id": 1, "title": "Toy Story", "genres": ["Animation", "Comedy"]}')
    Item(item_id='1', title='Toy Story', extra={'genres': 'Animation|Comedy'})
    """
    obj = _decode_object(raw, max_bytes)
    item_id = _identifier(obj, "item_id")
    title = obj.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TEXT_CHARS:
        raise InvalidEvent("bad_title", f"title must be non-empty text, got {_show(title)}")
    _storable("title", title)
    extra = {}
    for name, value in obj.items():
        if name in ("item_id", "title") or value is None:
            continue
        if len(_storable("field name", name)) > MAX_ID_CHARS:
            raise InvalidEvent("bad_field", f"field name {_show(name)} has {len(name)} chars")
        extra[name] = _extra_value(name, value)
    return Item(item_id, title.strip(), extra)
