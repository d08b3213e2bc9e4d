"""Dead-letter records: a rejected message, why, and where it came from, bounded in size.

A DLQ record must never be refused by the broker, whatever arrived: the payload (and key) are
cut to a prefix when large, and the original size and sha256 are kept, so the record can be
matched to its source and its JSON stays below ``max_record_bytes`` (well under Kafka's default
``message.max.bytes`` of 1,048,588). A message without a value (a tombstone) is recorded as
such (``payload_encoding: "null"``).

>>> dl = DeadLetter.build(b"x" * 100_000, "too_large", "100000 bytes", topic="interactions",
...                       partition=0, offset=7, time_s=1.0)
>>> len(dl.payload), dl.payload_size, dl.truncated, len(dl.to_json()) <= DLQ_RECORD_BYTES
(16384, 100000, True, True)
>>> DeadLetter.from_json(dl.to_json()) == dl
True
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "DLQ_DETAIL_CHARS",
    "DLQ_KEY_BYTES",
    "DLQ_PAYLOAD_BYTES",
    "DLQ_RECORD_BYTES",
    "DeadLetter",
    "internal_error_code",
    "printable",
    "sha256_hex",
]

DLQ_PAYLOAD_BYTES = 16_384
"""Payload bytes kept by default (as much as a valid event may have)."""
DLQ_RECORD_BYTES = 65_536
"""Default bound on one DLQ record's JSON, in bytes."""
DLQ_KEY_BYTES = 1024
"""Key bytes kept."""
DLQ_DETAIL_CHARS = 1000
"""Characters of ``detail`` kept."""
_REASON_CHARS = 64


def sha256_hex(data: bytes | None) -> str:
    """Hex sha256 of ``data`` ("" for no data).

    >>> sha256_hex(b"")[:12], sha256_hex(None)
    ('e3b0c44298fc', '')
    """
    return "" if data is None else hashlib.sha256(data).hexdigest()


def printable(text: str, limit: int = DLQ_DETAIL_CHARS) -> str:
    """``text`` safe for any store and log: no NUL or lone surrogate, at most ``limit`` chars.

    >>> printable("a\\x00b\\ud800c"), printable("x" * 20, limit=8)
    ('a\\\\x00b\\\\ud800c', 'xxxxxxx…')
    """
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def internal_error_code(error: BaseException) -> str:
    """The reason code of an unexpected exception: ``internal_error:<class>`` (≤ 64 chars).

    >>> internal_error_code(KeyError("x"))
    'internal_error:KeyError'
    """
    return f"internal_error:{type(error).__name__}"[:_REASON_CHARS]


def _encode(data: bytes | None) -> tuple[str | None, str]:
    if data is None:
        return None, "null"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def _decode(text: str | None, encoding: str) -> bytes | None:
    if encoding == "null" or text is None:
        return None
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")


def _prefix(data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of ``data``; a UTF-8 character cut at the end is dropped."""
    if len(data) <= limit:
        return data
    cut = data[:limit]
    try:
        cut.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            return cut[: exc.start]
    return cut


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message for the ``*.dlq`` topic (and the ``dead_letters`` table).

    ``payload`` / ``key`` are what is kept (``None``: the message had none); ``payload_size``
    and ``payload_sha256`` describe the original payload (computed when not given).
    ``context`` holds extra facts, e.g. both hashes of a conflicting duplicate.

    >>> dl = DeadLetter(b"\\xff", "not_utf8", "bad byte", "interactions", 0, 41, 1.5)
    >>> DeadLetter.from_json(dl.to_json()) == dl, dl.payload_size, dl.truncated
    (True, 1, False)
    >>> DeadLetter(None, "null_value", "tombstone").to_json()[:36]
    b'{"payload": null, "payload_encoding"'
    """

    payload: bytes | None
    reason_code: str
    detail: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    time_s: float = 0.0
    payload_size: int | None = None
    payload_sha256: str | None = None
    key: bytes | None = None
    context: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.payload is not None and not isinstance(self.payload, bytes):
            object.__setattr__(self, "payload", bytes(self.payload))
        if self.payload_size is None:
            object.__setattr__(self, "payload_size", len(self.payload or b""))
        if self.payload_sha256 is None:
            object.__setattr__(self, "payload_sha256", sha256_hex(self.payload))

    @property
    def truncated(self) -> bool:
        """Whether ``payload`` is only a prefix of the original."""
        return len(self.payload or b"") < (self.payload_size or 0)

    @classmethod
    def build(
        cls,
        payload: bytes | None,
        reason_code: str,
        detail: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
        context: Mapping[str, str] | None = None,
        time_s: float | None = None,
        max_payload_bytes: int = DLQ_PAYLOAD_BYTES,
        max_record_bytes: int = DLQ_RECORD_BYTES,
    ) -> DeadLetter:
        """The record for ``payload``, cut so that :meth:`to_json` fits ``max_record_bytes``.

        The payload is cut to ``max_payload_bytes``, then halved while the JSON (escapes and
        base64 included) is still too long; ``ValueError`` if even an empty payload does not
        fit (``max_record_bytes`` far too small).
        """
        raw = None if payload is None else bytes(payload)
        letter = cls(
            payload=None if raw is None else _prefix(raw, max(0, max_payload_bytes)),
            reason_code=printable(reason_code, _REASON_CHARS),
            detail=printable(detail),
            topic=topic,
            partition=partition,
            offset=offset,
            time_s=time.time() if time_s is None else time_s,
            payload_size=len(raw or b""),
            payload_sha256=sha256_hex(raw),
            key=None if key is None else _prefix(bytes(key), DLQ_KEY_BYTES),
            context={printable(k, 64): printable(v, 200) for k, v in (context or {}).items()},
        )
        while len(letter.to_json()) > max_record_bytes:
            kept = letter.payload or b""
            if not kept:
                raise ValueError(
                    f"a dead letter needs more than max_record_bytes={max_record_bytes} bytes"
                )
            letter = replace(letter, payload=_prefix(kept, len(kept) // 2))
        return letter

    @classmethod
    def from_error(
        cls,
        payload: bytes | None,
        error: Any,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        time_s: float | None = None,
        **limits: Any,
    ) -> DeadLetter:
        """:meth:`build` from an :class:`~lsat.stream.errors.InvalidEvent` (its reason and
        detail)."""
        return cls.build(
            payload,
            error.reason_code,
            error.detail,
            topic=topic,
            partition=partition,
            offset=offset,
            time_s=time_s,
            **limits,
        )

    def to_json(self) -> bytes:
        """UTF-8 JSON; payload and key as text when they decode, else base64 (or null)."""
        payload, encoding = _encode(self.payload)
        key, key_encoding = _encode(self.key)
        record = {
            "payload": payload,
            "payload_encoding": encoding,
            "payload_bytes": self.payload_size,
            "payload_sha256": self.payload_sha256,
            "payload_truncated": self.truncated,
            "key": key,
            "key_encoding": key_encoding,
            "reason_code": self.reason_code,
            "detail": self.detail,
            "context": dict(self.context),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "time_s": self.time_s,
        }
        return json.dumps(record, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> DeadLetter:
        """Inverse of :meth:`to_json` (records written before size/hash/key existed too)."""
        rec = json.loads(raw)
        return cls(
            _decode(rec["payload"], rec["payload_encoding"]),
            rec["reason_code"],
            rec["detail"],
            rec["topic"],
            rec["partition"],
            rec["offset"],
            rec["time_s"],
            payload_size=rec.get("payload_bytes"),
            payload_sha256=rec.get("payload_sha256"),
            key=_decode(rec.get("key"), rec.get("key_encoding", "null")),
            context=dict(rec.get("context") or {}),
        )
