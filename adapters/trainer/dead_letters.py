"""What the trainer sends to ``adapter.retrain.dlq``, and why.

A record on ``adapter.retrain`` that cannot be read (``null_value``, ``not_utf8``,
``not_json``, ``bad_retrain_request``) or whose job failed every attempt
(``training_failed``; ``internal_error:<exception class>`` for anything else, as the stream
worker writes it) becomes one bounded :class:`lsat.stream.dead_letter.DeadLetter`: payload
prefix, original size and sha256, key, reason and where it came from.
"""

from __future__ import annotations

import json

from lsat.stream.errors import InvalidEvent
from lsat.stream.triggers import RetrainRequest

__all__ = ["DEAD_LETTER_REASONS", "metric_reason", "parse_request"]

DEAD_LETTER_REASONS = (
    "null_value",
    "not_utf8",
    "not_json",
    "bad_retrain_request",
    "training_failed",
    "internal_error",
)
"""The ``reason`` label values of the trainer's dead-letter counter (see :func:`metric_reason`)."""


def parse_request(value: bytes | None) -> RetrainRequest:
    """The request in a record's value; :class:`InvalidEvent` names why it is unreadable.

    >>> parse_request(None)
    Traceback (most recent call last):
    ...
    lsat.stream.errors.InvalidEvent: null_value: record has no value (a tombstone)
    >>> parse_request(b"\\xff{")
    Traceback (most recent call last):
    ...
    lsat.stream.errors.InvalidEvent: not_utf8: payload is not UTF-8 ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)
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
        raise InvalidEvent("not_utf8", f"payload is not UTF-8 ({exc})") from None
    try:
        json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer literal beyond the digit limit
        raise InvalidEvent("not_json", str(exc)) from None
    except RecursionError:
        raise InvalidEvent("not_json", "nesting too deep") from None
    return RetrainRequest.from_json(value)


def metric_reason(reason_code: str) -> str:
    """The metric label of a reason code: ``internal_error:<class>`` counts as ``internal_error``.

    >>> metric_reason("internal_error:KeyError"), metric_reason("not_json")
    ('internal_error', 'not_json')
    """
    return reason_code.split(":", 1)[0]
