"""What the trainer sends to ``adapter.retrain.dlq``, and why.

A record on ``adapter.retrain`` that cannot be read (``null_value``, ``not_utf8``,
``not_json``, ``bad_retrain_request``) or whose job failed every attempt
(``training_failed``, ``internal_error``) becomes one
:class:`lsat.stream.events.DeadLetter` with the original payload, its reason and where it
came from. Payloads above ``max_payload_bytes`` are cut, their original size and sha256 kept
in the detail, so a dead letter always fits in a Kafka message.
"""

from __future__ import annotations

import hashlib
import json

from lsat.stream.errors import InvalidEvent
from lsat.stream.events import DeadLetter
from lsat.stream.triggers import RetrainRequest

__all__ = [
    "DEAD_LETTER_REASONS",
    "MAX_DETAIL_CHARS",
    "MAX_PAYLOAD_BYTES",
    "dead_letter",
    "parse_request",
]

DEAD_LETTER_REASONS = (
    "null_value",
    "not_utf8",
    "not_json",
    "bad_retrain_request",
    "training_failed",
    "internal_error",
)
"""Every reason code the trainer dead-letters with (the metric's ``reason`` label values)."""

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_DETAIL_CHARS = 4000


def parse_request(value: bytes | None) -> RetrainRequest:
    """The request in a record's value; :class:`InvalidEvent` names why it is unreadable.

    >>> parse_request(None)
    Traceback (most recent call last):
    ...
    lsat.stream.errors.InvalidEvent: null_value: record has no value (a tombstone)
    >>> parse_request(b"\\xff{")
    Traceback (most recent call last):
    ...
    lsat.stream.errors.InvalidEvent: not_utf8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte
    >>> parse_request(b"{oops")
    Traceback (most recent call last):
    ...
    lsat.stream.errors.InvalidEvent: not_json: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)
    """  # noqa: E501
    if value is None:
        raise InvalidEvent("null_value", "record has no value (a tombstone)")
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("not_utf8", str(exc)) from None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)) from None
    except RecursionError:
        raise InvalidEvent("not_json", "nesting too deep") from None
    return RetrainRequest.from_json(value)


def dead_letter(
    value: bytes | None,
    reason: str,
    detail: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> DeadLetter:
    """The dead letter for a record of ``topic``, its payload cut to ``max_payload_bytes``.

    >>> letter = dead_letter(b"x" * 10, "not_json", "bad", topic="t", partition=0, offset=5,
    ...                      max_payload_bytes=4)
    >>> letter.payload, letter.offset
    (b'xxxx', 5)
    >>> letter.detail[:55]
    'bad; payload cut to 4 of 10 bytes, sha256 fc11d6f28e59d'
    """
    payload = b"" if value is None else bytes(value)
    detail = detail[:MAX_DETAIL_CHARS]
    if len(payload) > max_payload_bytes:
        digest = hashlib.sha256(payload).hexdigest()
        detail += f"; payload cut to {max_payload_bytes} of {len(payload)} bytes, sha256 {digest}"
        payload = payload[:max_payload_bytes]
    error = InvalidEvent(reason, detail)
    return DeadLetter.from_error(payload, error, topic=topic, partition=partition, offset=offset)
