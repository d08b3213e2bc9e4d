"""``lsat produce``'s line rules, table-tested (no Kafka)."""

from __future__ import annotations

import json

import pytest

from lsat.core.settings import KafkaSettings
from lsat.stream.producer import (
    REASONS,
    ProduceSummary,
    Record,
    Rejected,
    parse_line,
    parse_lines,
    produce,
)

GOOD = b'{"user_id": "u1", "item_id": "i9", "rating": 4, "timestamp": 880000000}'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (GOOD + b"\n", Record(1, b"u1", GOOD)),
        (b'  {"user_id": 42}\r\n', Record(1, b"42", b'{"user_id": 42}')),
        (b'{"user_id": "  u7 "}', Record(1, b"u7", b'{"user_id": "  u7 "}')),  # as the worker
        (b'{"user_id": "caf\xc3\xa9"}', Record(1, "café".encode(), b'{"user_id": "caf\xc3\xa9"}')),
        (b"\xef\xbb\xbf" + GOOD, Record(1, b"u1", GOOD)),  # byte-order mark on line 1
        (b"", None),
        (b" \t\r\n", None),
    ],
)
def test_lines_that_are_sent_or_blank(raw: bytes, expected: Record | None) -> None:
    assert parse_line(raw, 1) == expected


@pytest.mark.parametrize(
    ("raw", "reason", "echo"),
    [
        (b'{"user_id": "u", "x": "\xff"}', "not_utf8", "byte 23"),
        (b"user_id=u1", "not_json", "'user_id=u1'"),
        (b'{"user_id": "u1",}', "not_json", "column 18"),
        (b'["u1", "i1"]', "not_object", "['u1', 'i1']"),
        (b'"u1"', "not_object", "str"),
        (b'{"item_id": "i1"}', "missing_key", "'user_id'"),
        (b'{"user_id": null}', "missing_key", "'user_id'"),
        (b'{"user_id": true}', "bad_key", "True"),
        (b'{"user_id": ["u1"]}', "bad_key", "['u1']"),
        (b'{"user_id": ""}', "bad_key", "empty"),
        (b'{"user_id": "\\ud800"}', "bad_key", "'\\ud800'"),
        (b'{"user_id": "u1", "pad": "' + b"x" * 200 + b'"}', "too_large", "228 bytes, limit 100"),
    ],
)
def test_lines_that_are_rejected_echo_the_problem(raw: bytes, reason: str, echo: str) -> None:
    outcome = parse_line(raw, 7, max_bytes=100)
    assert isinstance(outcome, Rejected)
    assert (outcome.line, outcome.reason) == (7, reason)
    assert echo in outcome.detail
    assert reason in REASONS


def test_key_field_is_configurable_or_absent() -> None:
    line = b'{"item_id": "i3", "title": "Heat (1995)"}'
    assert parse_line(line, 1, key_field="item_id") == Record(1, b"i3", line)
    assert parse_line(line, 1, key_field=None) == Record(1, None, line)
    assert parse_line(line, 1).reason == "missing_key"  # type: ignore[union-attr]


def test_line_numbers_count_blank_lines() -> None:
    lines = [GOOD, b"", b"oops", b"\n", GOOD.replace(b"u1", b"u2")]
    outcomes = list(parse_lines(lines))
    assert [(o.line, type(o).__name__) for o in outcomes] == [
        (1, "Record"),
        (3, "Rejected"),
        (5, "Record"),
    ]


def test_dry_run_counts_without_a_broker() -> None:
    seen: list[Rejected] = []
    lines = [GOOD, b"nope", b'{"user_id": 1}', b"[]"]
    summary = produce(
        parse_lines(lines),
        KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        "interactions",
        on_rejected=seen.append,
        dry_run=True,
    )
    assert (summary.sent, summary.bytes) == (2, len(GOOD) + len(b'{"user_id": 1}'))
    assert summary.skipped == {"not_json": 1, "not_object": 1}
    assert [r.line for r in seen] == [2, 4]
    assert not summary.ok
    assert summary.describe().startswith("would send 2 records")
    assert json.loads(json.dumps(summary.to_dict()))["skipped"] == {"not_json": 1, "not_object": 1}


def test_summary_of_a_clean_run_is_ok() -> None:
    summary = ProduceSummary("t", sent=2, bytes=10)
    assert summary.ok
    assert summary.describe() == "sent 2 records (10 bytes) to t; skipped 0 lines; failed 0"
