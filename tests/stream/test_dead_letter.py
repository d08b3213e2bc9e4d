"""Dead-letter records stay below their size bound whatever the payload, and round-trip."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from lsat.stream.dead_letter import (
    DLQ_PAYLOAD_BYTES,
    DLQ_RECORD_BYTES,
    DeadLetter,
    internal_error_code,
    printable,
)

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("payload", "encoding"),
    [
        (b"x" * (5 * MB), "utf-8"),
        (b"\x01" * (5 * MB), "utf-8"),  # every byte becomes a 6-char JSON escape
        (bytes(range(256)) * 20_000, "base64"),  # base64 grows it by a third
        ("é".encode() * MB, "utf-8"),  # two-byte characters: never cut in half
        (b'"\\' * MB, "utf-8"),
        (b"", "utf-8"),
        (None, "null"),
    ],
    ids=["ascii", "controls", "binary", "two-byte", "quotes", "empty", "tombstone"],
)
def test_any_payload_fits_the_record_bound_and_keeps_its_size_and_hash(
    payload: bytes | None, encoding: str
) -> None:
    letter = DeadLetter.build(payload, "too_large", "detail", topic="t", partition=1, offset=2)
    value = letter.to_json()
    assert len(value) <= DLQ_RECORD_BYTES
    record = json.loads(value)
    assert record["payload_encoding"] == encoding
    assert record["payload_bytes"] == len(payload or b"")
    digest = "" if payload is None else hashlib.sha256(payload).hexdigest()
    assert record["payload_sha256"] == digest
    kept = letter.payload
    assert kept == (None if payload is None else payload[: len(kept or b"")])
    assert len(kept or b"") <= DLQ_PAYLOAD_BYTES
    assert record["payload_truncated"] == (len(payload or b"") > len(kept or b""))
    assert DeadLetter.from_json(value) == letter


def test_a_tighter_record_bound_cuts_the_payload_further() -> None:
    letter = DeadLetter.build(b"\x00" * 10_000, "bad", "d", max_record_bytes=4096)
    assert len(letter.to_json()) <= 4096
    assert 0 < len(letter.payload or b"") < 10_000
    with pytest.raises(ValueError, match="max_record_bytes=50"):
        DeadLetter.build(b"x", "bad", "d", max_record_bytes=50)


def test_key_detail_reason_and_context_are_bounded_and_storable() -> None:
    letter = DeadLetter.build(
        b"{}",
        "r" * 100,
        "\x00\ud800" + "d" * 5000,
        key=b"\xff" * 5000,
        context={"a": "\ud800" * 500},
    )
    record = json.loads(letter.to_json())
    assert len(record["reason_code"]) == 64
    assert len(record["detail"]) <= 1000 and "\x00" not in record["detail"]
    assert record["key_encoding"] == "base64" and len(base64.b64decode(record["key"])) == 1024
    assert len(record["context"]["a"]) <= 200
    letter.to_json().decode("utf-8")  # no lone surrogate anywhere


def test_records_written_before_size_and_hash_existed_still_read() -> None:
    old = {
        "payload": "abc",
        "payload_encoding": "utf-8",
        "reason_code": "not_json",
        "detail": "d",
        "topic": "interactions",
        "partition": 0,
        "offset": 5,
        "time_s": 1.0,
    }
    letter = DeadLetter.from_json(json.dumps(old).encode())
    assert (letter.payload, letter.payload_size, letter.key, dict(letter.context)) == (
        b"abc",
        3,
        None,
        {},
    )
    assert letter.payload_sha256 == hashlib.sha256(b"abc").hexdigest()


def test_internal_error_codes_and_printable_text() -> None:
    class AVeryLongExceptionNameThatGoesOnAndOnAndOnForeverAndEverError(Exception):
        pass

    assert internal_error_code(ValueError()) == "internal_error:ValueError"
    long = internal_error_code(AVeryLongExceptionNameThatGoesOnAndOnAndOnForeverAndEverError())
    assert len(long) == 64 and long.startswith("internal_error:AVery")
    assert printable("ok\x00\udcff") == "ok\\x00\\udcff"
