"""Poison records for the isolation tests: each message with the outcome it must end in.

(A plain module next to the tests; pytest puts this folder on ``sys.path``.)

``expect`` is ``"stored"``, ``"duplicate"`` or the dead-letter reason code. Valid events come
from a seeded generator, so a run is reproducible; :func:`fuzz_interactions` mixes them with
every poison class the worker must survive.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from lsat.data.types import Interaction
from lsat.stream.events import parse_interaction

NOW_S = 1_700_000_000.0
"""The processor clock in the pure tests (no event is 'in the future' by accident)."""
MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One message: value (``None`` = tombstone), key, and the outcome it must end in."""

    raw: bytes | None
    key: bytes | None
    expect: str
    kind: str = ""


def event_json(
    user: str, item: str, ts: int, rating: float, event_id: str | None = None, **extra: object
) -> bytes:
    obj: dict[str, object] = {"user_id": user, "item_id": item, "rating": rating, "timestamp": ts}
    if event_id is not None:
        obj["event_id"] = event_id
    obj.update(extra)
    return json.dumps(obj).encode()


def _raw_string_event(field: str, json_literal: str) -> bytes:
    """An otherwise valid event whose ``field`` is the raw JSON string literal given."""
    base = {"user_id": "u1", "item_id": "i1", "rating": 4, "timestamp": 880_000_000}
    text = json.dumps({k: v for k, v in base.items() if k != field})
    return (text[:-1] + f', "{field}": {json_literal}}}').encode()


def poison_interactions(size_mb: int = 5) -> list[Case]:
    """One of every poison class (interactions topic), with their expected reasons."""
    return [
        Case(None, b"u1", "null_value", "tombstone with key"),
        Case(None, None, "null_value", "tombstone without key"),
        Case(_raw_string_event("user_id", '"u\\ud800"'), b"u", "invalid_unicode", "surrogate"),
        Case(_raw_string_event("item_id", '"\\udfff"'), None, "invalid_unicode", "surrogate"),
        Case(_raw_string_event("event_id", '"e\\ud83d"'), b"u", "invalid_unicode", "surrogate"),
        Case(_raw_string_event("item_id", '"i\\u0000"'), b"u", "bad_id_chars", "NUL in id"),
        Case(_raw_string_event("user_id", '"u\\u0085"'), b"u", "bad_id_chars", "C1 in id"),
        Case(_raw_string_event("event_id", '"e\\u001b"'), b"u", "bad_event_id", "ESC in id"),
        Case(b"{" + b" " * (size_mb * MB) + b"}", b"big", "too_large", f"{size_mb} MB"),
        Case(b"\xff\xfe\x00\x01junk\x80", b"bin", "not_utf8", "binary junk"),
        Case(b'{"user_id": "u1", "item_id":', None, "not_json", "truncated JSON"),
        Case(b'{"user_id": "u", "item_id": "i", "rating": 4, "timestamp": 1' + b"0" * 5000 + b"}",
             None, "not_json", "int beyond the digit limit"),
        Case(b'{"user_id": "u", "item_id": "i", "rating": 1' + b"0" * 400 + b', "timestamp": 9e8}',
             None, "rating_not_finite", "int beyond float"),
        Case(event_json("u" * 200, "i" * 200, 880_000_000, 4), None, "id_too_long", "long key"),
    ]  # fmt: skip


def valid_events(rng: random.Random, n: int, users: int = 40, items: int = 300) -> list[bytes]:
    """``n`` valid, distinct events (explicit event ids for about half of them)."""
    out, keys = [], set()
    while len(out) < n:
        user, item = f"u{rng.randrange(users)}", f"i{rng.randrange(items)}"
        ts = 880_000_000 + rng.randrange(5_000_000)
        event_id = f"e{rng.randrange(10**9)}" if rng.random() < 0.5 else None
        raw = event_json(user, item, ts, rng.choice([1, 2, 3, 4, 5]), event_id)
        key = parse_interaction(raw, now_s=NOW_S).key()
        if key not in keys:
            keys.add(key)
            out.append(raw)
    return out


def conflicting(raw: bytes) -> bytes:
    """The same event (same id) with another rating."""
    obj = json.loads(raw)
    obj["rating"] = 1 if obj["rating"] != 1 else 5
    return json.dumps(obj).encode()


def same_content(raw: bytes) -> bytes:
    """The same event re-encoded (other key order and spacing): an exact duplicate."""
    obj = json.loads(raw)
    return json.dumps(dict(reversed(obj.items())), indent=1).encode()


def fuzz_interactions(seed: int, n: int, big_mb: int = 1) -> list[Case]:
    """``n`` records: ~60 % valid, the rest duplicates, conflicts and every poison class."""
    rng = random.Random(seed)
    valid = iter(valid_events(rng, n))
    poisons = [c for c in poison_interactions(big_mb) if c.kind != f"{big_mb} MB"]
    sent: list[bytes] = []
    cases: list[Case] = []
    big_left = 2
    while len(cases) < n:
        roll = rng.random()
        if roll < 0.6 or not sent:
            raw = next(valid)
            sent.append(raw)
            cases.append(Case(raw, b"k", "stored", "valid"))
        elif roll < 0.68:
            cases.append(Case(rng.choice(sent), b"k", "duplicate", "re-delivery"))
        elif roll < 0.72:
            cases.append(Case(same_content(rng.choice(sent)), None, "duplicate", "re-encoded"))
        elif roll < 0.78:
            cases.append(Case(conflicting(rng.choice(sent)), b"k", "conflicting_duplicate"))
        elif roll < 0.85:
            junk = b"\xff" + rng.randbytes(rng.randrange(1, 300))
            cases.append(Case(junk, rng.choice([None, b"k"]), "not_utf8", "binary junk"))
        elif roll < 0.8505 and big_left:
            big_left -= 1
            cases.append(Case(b"[" + b"0," * (big_mb * MB // 2) + b"0]", None, "too_large"))
        else:
            cases.append(rng.choice(poisons))
    return cases


def expected_keys(cases: list[Case]) -> list[Interaction]:
    """The interactions that must be stored, in arrival order."""
    return [parse_interaction(c.raw, now_s=NOW_S) for c in cases if c.expect == "stored"]


ITEM_POISON = [
    Case(None, b"i1", "null_value", "tombstone"),
    Case(b'{"item_id": "i\\ud800", "title": "T"}', b"i", "invalid_unicode", "surrogate id"),
    Case(b'{"item_id": "i2", "title": "T\\udc00"}', b"i", "invalid_unicode", "surrogate title"),
    Case(b'{"item_id": "i3", "title": "a\\u0000b"}', b"i", "bad_text_chars", "NUL in title"),
    Case(b'{"item_id": "i4", "title": "T", "g": "x\\u0000"}', b"i", "bad_text_chars", "NUL"),
    Case(b'{"item_id": "i5", "title": "T", "\\ud800": "x"}', b"i", "invalid_unicode", "key"),
    Case(b"\xff\x00junk", None, "not_utf8", "binary junk"),
    Case(b'{"item_id": "i6", "title": "' + b"x" * (5 * MB) + b'"}', b"i6", "too_large", "5 MB"),
    Case(b'{"item_id": "i\\u009f", "title": "T"}', None, "bad_id_chars", "C1 in id"),
]
"""Poison for the ``items`` topic."""


def valid_items(n: int) -> list[Case]:
    """``n`` valid catalogue items (ids ``c0``…)."""
    return [
        Case(json.dumps({"item_id": f"c{k}", "title": f"Film {k}", "genres": ["Drama"]}).encode(),
             f"c{k}".encode(), "stored", "valid item")
        for k in range(n)
    ]  # fmt: skip
