"""``lsat produce``: JSON lines → a Kafka topic, keyed by a field, with an honest summary.

:func:`parse_line` decides, with no I/O, what one input line becomes: a :class:`Record` (key +
value to send), a :class:`Rejected` line (reason slug + detail; never sent), or ``None`` for a
blank line. :func:`produce` sends the records with kafka-python (acks from every in-sync
replica) and counts what the broker acknowledged. The value sent is the line itself (stripped
of surrounding whitespace), not a re-encoding: the stream worker validates events, this only
refuses what cannot be an event at all.

>>> parse_line(b'{"user_id": 7, "item_id": "i9", "rating": 4, "timestamp": 9e8}\\n', 1)
Record(line=1, key=b'7', value=b'{"user_id": 7, "item_id": "i9", "rating": 4, "timestamp": 9e8}')
>>> parse_line(b'{"user_id": " "}', 2)
Rejected(line=2, reason='bad_key', detail='user_id is empty')
>>> parse_line(b'  \\r\\n', 3) is None
True
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lsat.core.settings import KafkaSettings
from lsat.stream.errors import StreamError
from lsat.stream.kafka_client import kafka_python_kwargs

__all__ = [
    "DEFAULT_KEY_FIELD",
    "MAX_VALUE_BYTES",
    "ProduceError",
    "ProduceSummary",
    "Record",
    "Rejected",
    "parse_line",
    "parse_lines",
    "produce",
]

DEFAULT_KEY_FIELD = "user_id"
MAX_VALUE_BYTES = 1_000_000
"""Largest value sent: under kafka-python's 1 MiB request limit and Kafka's default
``message.max.bytes`` (1,048,588) with room for the record's overhead."""
REASONS = ("not_utf8", "not_json", "not_object", "missing_key", "bad_key", "too_large")
"""Why a line is not sent."""


class ProduceError(StreamError):
    """The records cannot be sent at all (no broker, unknown topic)."""


@dataclass(frozen=True, slots=True)
class Record:
    """A line to send: its 1-based line number, key (None: no key field) and value."""

    line: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line not sent: ``reason`` is one of :data:`REASONS`; ``detail`` echoes the value."""

    line: int
    reason: str
    detail: str


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def _key(obj: dict[str, Any], key_field: str) -> bytes:
    """The key as the worker reads the id: integers as decimal text, strings stripped."""
    if obj.get(key_field) is None:
        raise _Reject("missing_key", f"no {key_field!r} field (or it is null)")
    value = obj[key_field]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Reject("bad_key", f"{key_field} must be a string or integer, got {_show(value)}")
    if not value.strip():
        raise _Reject("bad_key", f"{key_field} is empty")
    try:
        return value.strip().encode("utf-8")
    except UnicodeEncodeError:
        raise _Reject("bad_key", f"{key_field} is not valid Unicode: {_show(value)}") from None


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def parse_line(
    raw: bytes,
    line: int,
    key_field: str | None = DEFAULT_KEY_FIELD,
    max_bytes: int = MAX_VALUE_BYTES,
) -> Record | Rejected | None:
    """What input line number ``line`` becomes; ``key_field=None`` sends without keys.

    >>> parse_line(b'[1, 2]', 4).reason, parse_line(b'{"user_id": 1.5}', 5).detail
    ('not_object', 'user_id must be a string or integer, got 1.5')
    >>> parse_line(b'{"item_id": "i"}', 6, key_field=None)
    Record(line=6, key=None, value=b'{"item_id": "i"}')
    """
    value = raw.strip()
    if line == 1 and value.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
        value = value[3:].strip()
    if not value:
        return None
    try:
        if len(value) > max_bytes:
            raise _Reject("too_large", f"{len(value):,} bytes, limit {max_bytes:,}")
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Reject("not_utf8", f"{exc.reason} at byte {exc.start}") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _Reject("not_json", f"{exc.msg} at column {exc.colno}: {_show(text)}") from None
        if not isinstance(obj, dict):
            raise _Reject("not_object", f"a JSON {type(obj).__name__}, not an object: {_show(obj)}")
        key = None if key_field is None else _key(obj, key_field)
    except _Reject as reject:
        return Rejected(line, reject.reason, reject.detail)
    return Record(line, key, value)


def parse_lines(
    lines: Iterable[bytes],
    key_field: str | None = DEFAULT_KEY_FIELD,
    max_bytes: int = MAX_VALUE_BYTES,
) -> Iterator[Record | Rejected]:
    """:func:`parse_line` over an input, numbering lines from 1 and dropping blank ones."""
    for number, raw in enumerate(lines, start=1):
        outcome = parse_line(raw, number, key_field, max_bytes)
        if outcome is not None:
            yield outcome


@dataclass(slots=True)
class ProduceSummary:
    """What a run did. ``failed`` counts records the broker did not acknowledge, by error.

    >>> s = ProduceSummary("interactions", sent=3, bytes=120)
    >>> s.skipped.update({"not_json": 2})
    >>> s.describe()
    'sent 3 records (120 bytes) to interactions; skipped 2 lines (not_json 2); failed 0'
    """

    topic: str
    sent: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Every non-blank line was sent and acknowledged."""
        return not self.skipped and not self.failed

    def describe(self) -> str:
        """One line for the terminal."""
        verb = "would send" if self.dry_run else "sent"
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.skipped.items()))
        failed = sum(self.failed.values())
        errors = ", ".join(f"{e} {n}" for e, n in sorted(self.failed.items()))
        return (
            f"{verb} {self.sent} records ({self.bytes:,} bytes) to {self.topic}; "
            f"skipped {skipped} lines{f' ({reasons})' if reasons else ''}; "
            f"failed {failed}{f' ({errors})' if errors else ''}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``lsat produce --json``)."""
        return {
            "topic": self.topic,
            "sent": self.sent,
            "bytes": self.bytes,
            "skipped": dict(self.skipped),
            "failed": dict(self.failed),
            "dry_run": self.dry_run,
        }


def produce(
    outcomes: Iterable[Record | Rejected],
    kafka: KafkaSettings,
    topic: str,
    *,
    on_rejected: Callable[[Rejected], None] | None = None,
    dry_run: bool = False,
    timeout_s: float = 10.0,
) -> ProduceSummary:
    """Send the records to ``topic``; rejected lines are counted and passed to ``on_rejected``.

    Raises :class:`ProduceError` when no broker answers or the topic does not exist (nothing
    is sent then). ``dry_run`` checks and counts without connecting.
    """
    summary = ProduceSummary(topic, dry_run=dry_run)
    producer = None if dry_run else _connect(kafka, topic, timeout_s)
    try:
        for outcome in outcomes:
            if isinstance(outcome, Rejected):
                summary.skipped[outcome.reason] += 1
                if on_rejected is not None:
                    on_rejected(outcome)
            elif producer is None:
                summary.sent += 1
                summary.bytes += len(outcome.value)
            else:
                _send(producer, topic, outcome, summary)
        if producer is not None:
            producer.flush(timeout=timeout_s)
    finally:
        if producer is not None:
            producer.close(timeout=timeout_s)
    return summary


def _connect(kafka: KafkaSettings, topic: str, timeout_s: float) -> Any:
    """A producer, once the topic is known to exist. Asked through the admin API: a producer's
    metadata request makes tansu create a missing topic even when told not to (measured)."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.errors import KafkaError

    kwargs = kafka_python_kwargs(kafka)
    timeout_ms = int(timeout_s * 1000)
    try:
        admin = KafkaAdminClient(
            **kwargs, request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms
        )
        try:
            known = topic in admin.list_topics()
        finally:
            admin.close()
        if not known:
            raise ProduceError(f"topic {topic!r} not found on {kafka.bootstrap_servers}")
        return KafkaProducer(
            **kwargs,
            acks="all",
            linger_ms=5,
            max_block_ms=timeout_ms,
            max_request_size=MAX_VALUE_BYTES + 48_576,
        )
    except KafkaError as exc:
        raise ProduceError(f"no Kafka broker at {kafka.bootstrap_servers}: {exc}") from None


_COUNTING = threading.Lock()
"""Acknowledgements arrive on the producer's I/O thread."""


def _send(producer: Any, topic: str, record: Record, summary: ProduceSummary) -> None:
    def acknowledged(_metadata: Any) -> None:
        with _COUNTING:
            summary.sent += 1
            summary.bytes += len(record.value)

    def failed(error: BaseException) -> None:
        with _COUNTING:
            summary.failed[type(error).__name__] += 1

    try:
        future = producer.send(topic, key=record.key, value=record.value)
    except Exception as error:  # raised before queueing (size, metadata): counted, go on
        failed(error)
        return
    future.add_callback(acknowledged)
    future.add_errback(failed)
