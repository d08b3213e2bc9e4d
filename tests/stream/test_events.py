"""Event validation: every malformed kind maps to its reason code; good events parse exactly."""

from __future__ import annotations

import json

import pytest

from lsat.data.types import Interaction, Item
from lsat.stream.errors import InvalidEvent, StreamError
from lsat.stream.events import REASON_CODES, DeadLetter, parse_interaction, parse_item

NOW_S = 1_700_000_000.0
GOOD = {"user_id": "u1", "item_id": "i1", "rating": 4, "timestamp": 880_000_000}


def encode(**changes: object) -> bytes:
    """GOOD with fields replaced; a value of ... deletes the field."""
    obj = {**GOOD, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


MALFORMED = [
    ("not_utf8", b'{"user_id": "\xff\xfe"}'),
    ("not_json", b'{"user_id": "u1",'),
    ("not_json", b""),
    ("not_json", b"[" * 5000 + b"]" * 5000),
    ("duplicate_key", b'{"user_id": "u1", "user_id": "u2", "item_id": "i", "rating": 4}'),
    ("not_object", b'["u1", "i1", 4]'),
    ("not_object", b'"hello"'),
    ("not_object", b"null"),
    ("too_large", encode(note="x" * 20_000)),
    ("missing_field", encode(user_id=...)),
    ("missing_field", encode(item_id=None)),
    ("missing_field", encode(timestamp=...)),
    ("bad_id_type", encode(user_id=1.5)),
    ("bad_id_type", encode(user_id=True)),
    ("bad_id_type", encode(item_id=["i1"])),
    ("bad_id_type", encode(item_id={"id": 1})),
    ("empty_id", encode(user_id="")),
    ("empty_id", encode(item_id="   ")),
    ("id_too_long", encode(user_id="u" * 300)),
    ("bad_id_chars", encode(item_id="a:b")),
    ("bad_id_chars", encode(user_id="u\n1")),
    ("bad_event_id", encode(event_id="")),
    ("bad_event_id", encode(event_id=["e"])),
    ("no_rating_or_label", encode(rating=...)),
    ("both_rating_and_label", encode(label=1)),
    ("bad_rating", encode(rating="4")),
    ("bad_rating", encode(rating=True)),
    ("rating_not_finite", b'{"user_id": "u", "item_id": "i", "rating": NaN, "timestamp": 9e8}'),
    (
        "rating_not_finite",
        b'{"user_id": "u", "item_id": "i", "rating": Infinity, "timestamp": 9e8}',
    ),
    ("rating_out_of_range", encode(rating=6)),
    ("rating_out_of_range", encode(rating=-1)),
    ("bad_label", encode(rating=..., label=2)),
    ("bad_label", encode(rating=..., label=True)),
    ("bad_label", encode(rating=..., label=0.5)),
    ("bad_label", encode(rating=..., label="1")),
    ("bad_timestamp", encode(timestamp="880000000")),
    ("bad_timestamp", encode(timestamp=False)),
    ("timestamp_not_finite", b'{"user_id": "u", "item_id": "i", "rating": 4, "timestamp": NaN}'),
    ("timestamp_negative", encode(timestamp=-5)),
    ("timestamp_too_old", encode(timestamp=12)),
    ("timestamp_in_future", encode(timestamp=NOW_S + 2 * 86_400)),
    ("timestamp_in_future", encode(timestamp=880_000_000_000)),  # milliseconds
]


@pytest.mark.parametrize(
    ("code", "raw"), MALFORMED, ids=[f"{c}-{i}" for i, (c, _) in enumerate(MALFORMED)]
)
def test_malformed_interaction_is_rejected_with_its_reason_code(code: str, raw: bytes) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_interaction(raw, now_s=NOW_S)
    assert info.value.reason_code == code
    assert code in REASON_CODES
    assert isinstance(info.value, StreamError)


def test_table_covers_at_least_twenty_distinct_reason_codes() -> None:
    assert len({code for code, _ in MALFORMED}) >= 20


def test_non_bytes_payload_is_rejected() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_interaction("{}", now_s=NOW_S)  # type: ignore[arg-type]
    assert info.value.reason_code == "not_bytes"


@pytest.mark.parametrize(
    ("changes", "field", "shown"),
    [
        ({"rating": 17}, "rating", "17"),
        ({"user_id": 1.5}, "user_id", "1.5"),
        ({"timestamp": "yesterday"}, "timestamp", "'yesterday'"),
        ({"user_id": "x" * 10_000}, "user_id", "10000"),
    ],
)
def test_error_detail_names_the_field_and_echoes_a_bounded_value(
    changes: dict[str, object], field: str, shown: str
) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_interaction(encode(**changes), now_s=NOW_S)
    assert field in str(info.value) or shown in str(info.value)
    assert shown in info.value.detail
    assert len(info.value.detail) < 200


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, Interaction("u1", "i1", 880_000_000, 1, 4.0)),
        ({"rating": 3}, Interaction("u1", "i1", 880_000_000, 0, 3.0)),
        ({"rating": 3.5}, Interaction("u1", "i1", 880_000_000, 1, 3.5)),
        ({"user_id": 42, "item_id": 7}, Interaction("42", "7", 880_000_000, 1, 4.0)),
        ({"user_id": " u1 "}, Interaction("u1", "i1", 880_000_000, 1, 4.0)),
        ({"rating": ..., "label": 0}, Interaction("u1", "i1", 880_000_000, 0, None)),
        ({"rating": None, "label": 1}, Interaction("u1", "i1", 880_000_000, 1, None)),
        ({"timestamp": 880_000_000.9}, Interaction("u1", "i1", 880_000_000, 1, 4.0)),
        ({"event_id": "e-1"}, Interaction("u1", "i1", 880_000_000, 1, 4.0, "e-1")),
        ({"event_id": 99}, Interaction("u1", "i1", 880_000_000, 1, 4.0, "99")),
        ({"extra": {"nested": [1]}}, Interaction("u1", "i1", 880_000_000, 1, 4.0)),
        ({"timestamp": NOW_S + 3600}, Interaction("u1", "i1", int(NOW_S) + 3600, 1, 4.0)),
    ],
)
def test_valid_interactions_parse(changes: dict[str, object], expected: Interaction) -> None:
    assert parse_interaction(encode(**changes), now_s=NOW_S) == expected


def test_event_id_defaults_to_the_interaction_key() -> None:
    event = parse_interaction(encode(), now_s=NOW_S)
    assert event.event_id == ""
    assert event.key() == "u1:i1:880000000"


def test_like_threshold_and_rating_range_are_configurable() -> None:
    raw = encode(rating=7)
    event = parse_interaction(raw, now_s=NOW_S, like_threshold=6, rating_range=(1, 10))
    assert (event.label, event.rating) == (1, 7.0)
    with pytest.raises(InvalidEvent, match="rating_out_of_range"):
        parse_interaction(raw, now_s=NOW_S)


def test_max_bytes_is_configurable() -> None:
    with pytest.raises(InvalidEvent, match="too_large"):
        parse_interaction(encode(), max_bytes=10, now_s=NOW_S)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"item_id": 5, "title": " Heat (1995) "}', Item("5", "Heat (1995)")),
        (
            b'{"item_id": "a", "title": "T", "genres": ["X", "Y"], "year": 1995, "n": null}',
            Item("a", "T", {"genres": "X|Y", "year": "1995"}),
        ),
    ],
)
def test_valid_items_parse(raw: bytes, expected: Item) -> None:
    item = parse_item(raw)
    assert item == expected
    assert item.extra == expected.extra


@pytest.mark.parametrize(
    ("code", "raw"),
    [
        ("bad_title", b'{"item_id": 5}'),
        ("bad_title", b'{"item_id": 5, "title": ""}'),
        ("bad_title", b'{"item_id": 5, "title": 12}'),
        ("missing_field", b'{"title": "T"}'),
        ("bad_field", b'{"item_id": 5, "title": "T", "meta": {"a": 1}}'),
        ("bad_field", b'{"item_id": 5, "title": "T", "genres": [1, 2]}'),
        ("not_json", b"{"),
    ],
)
def test_malformed_items_are_rejected(code: str, raw: bytes) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_item(raw)
    assert info.value.reason_code == code


@pytest.mark.parametrize("payload", [b'{"ok": "\xc3\xa9t\xc3\xa9"}', b"\xff\x00binary", b""])
def test_dead_letter_round_trips_any_payload(payload: bytes) -> None:
    try:
        parse_interaction(payload, now_s=NOW_S)
    except InvalidEvent as err:
        letter = DeadLetter.from_error(
            payload, err, topic="interactions", partition=2, offset=17, time_s=5.0
        )
    record = json.loads(letter.to_json())
    assert record["reason_code"] == letter.reason_code
    assert (record["topic"], record["partition"], record["offset"]) == ("interactions", 2, 17)
    assert record["payload_encoding"] == ("base64" if payload.startswith(b"\xff") else "utf-8")
    assert DeadLetter.from_json(letter.to_json()) == letter
