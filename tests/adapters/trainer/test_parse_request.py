"""Reading ``adapter.retrain`` records: each bad class gets its reason; a seeded fuzz of 5,000
records never raises anything but :class:`InvalidEvent` (which the consumer dead-letters)."""

from __future__ import annotations

import json
import random

import pytest

from lsat.adapters.trainer.dead_letters import DEAD_LETTER_REASONS, metric_reason, parse_request
from lsat.stream.errors import InvalidEvent
from lsat.stream.triggers import RetrainRequest

VALID = RetrainRequest(4, 10, 20, 30, "drift", {"page_hinkley": 1.5}, 12.0)


def _mutated(**changes: object) -> bytes:
    payload = json.loads(VALID.to_json())
    payload.update(changes)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "null_value"),
        (b"", "not_json"),
        (b"\xff\xfe\x00", "not_utf8"),
        (b"\xed\xa0\x80", "not_utf8"),  # a UTF-8-encoded lone surrogate
        (b"{oops", "not_json"),
        (b"[" * 100_000, "not_json"),  # nesting too deep
        (b"1" * 5000, "not_json"),  # beyond the integer digit limit
        (b"[1, 2]", "bad_retrain_request"),
        (b'"\\ud800"', "bad_retrain_request"),
        (_mutated(window_id=-1), "bad_retrain_request"),
        (_mutated(window_id=True), "bad_retrain_request"),
        (_mutated(trigger="\ud800"), "bad_retrain_request"),
        (_mutated(drift={"x": "NaN"}), "bad_retrain_request"),
        (_mutated(extra=1), "bad_retrain_request"),
    ],
)
def test_each_bad_class_has_its_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_request(value)
    assert caught.value.reason_code == reason
    assert metric_reason(reason) in DEAD_LETTER_REASONS


def test_a_valid_request_round_trips() -> None:
    assert parse_request(VALID.to_json()) == VALID


def _fuzzed(rng: random.Random) -> bytes | None:
    kind = rng.randrange(6)
    if kind == 0:
        return None if rng.random() < 0.2 else rng.randbytes(rng.randrange(0, 64))
    raw = bytearray(VALID.to_json())
    if kind == 1:  # flip bytes
        for _ in range(rng.randrange(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    if kind == 2:  # cut
        return bytes(raw[: rng.randrange(len(raw))])
    payload = json.loads(VALID.to_json())
    field = rng.choice(sorted(payload))
    odd: list[object] = [None, -1, 2**70, 1.5, "x", "\ud800", [], {}, True, float("nan")]
    if kind == 3:
        payload[field] = rng.choice(odd)
    elif kind == 4:
        del payload[field]
    else:
        payload[rng.choice(["extra", "\x00", "\ud800"])] = rng.choice(odd)
    return json.dumps(payload).encode("utf-8", "surrogatepass")


def test_fuzz_only_ever_raises_invalid_event() -> None:
    rng = random.Random(20240607)
    outcomes: dict[str, int] = {}
    for _ in range(5000):
        value = _fuzzed(rng)
        try:
            parse_request(value)
        except InvalidEvent as exc:
            assert exc.reason_code in DEAD_LETTER_REASONS, exc
            outcomes[exc.reason_code] = outcomes.get(exc.reason_code, 0) + 1
        else:
            outcomes["valid"] = outcomes.get("valid", 0) + 1
    reasons = {"null_value", "not_utf8", "not_json", "bad_retrain_request"}
    assert reasons <= outcomes.keys()
