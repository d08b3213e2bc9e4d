"""Request parsing: bad bodies give 400 errors naming the bad value."""

from __future__ import annotations

import pytest

from lsat.adapters.serving.api import (
    BadRequest,
    parse_promote,
    parse_recommend,
    parse_rollback,
    parse_score,
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"item_id": "1"}', "user_id must be"),
        (b'{"user_id": "", "item_id": "1"}', "user_id must not be empty"),
        (b'{"user_id": "u"}', 'give "item_id"'),
        (b'{"user_id": "u", "item_ids": []}', "non-empty list"),
        (b'{"user_id": "u", "item_ids": [1.5]}', "item_ids[0]"),
        (b'{"user_id": "u", "item_id": "1", "history": [{"item_id": "2"}]}', "history[0]"),
        (b'{"user_id": "u", "item_id": "1", "history": [{"item_id": "2", "label": 3}]}', "label"),
        (b'{"user_id": true, "item_id": "1"}', "True"),
    ],
)
def test_bad_score_bodies_name_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_score(raw)


def test_score_body_with_history() -> None:
    body = b'{"user_id": 5, "item_ids": ["a", 7], "history": [{"item_id": 3, "label": true}]}'
    request = parse_score(body)
    assert (request.user_id, request.item_ids, request.history) == ("5", ("a", "7"), (("3", 1),))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"user_id": "u", "candidates": ["a"], "k": 0}', "k must be a positive integer"),
        (b'{"user_id": "u", "candidates": "a", "k": 1}', "candidates must be a non-empty list"),
    ],
)
def test_bad_recommend_bodies(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_recommend(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"kind": "short", "version": 2}', ("short", 2, "serving-short")),
        (b'{"kind": "long", "version": 1, "alias": "candidate"}', ("long", 1, "candidate")),
    ],
)
def test_promote_bodies(raw: bytes, expected: tuple[str, int, str]) -> None:
    request = parse_promote(raw)
    assert (request.kind, request.version, request.alias) == expected


@pytest.mark.parametrize(
    "raw", [b'{"kind": "mid", "version": 1}', b'{"kind": "short", "version": 0}', b"{}"]
)
def test_bad_promote_bodies(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_promote(raw)


def test_rollback_needs_an_alias() -> None:
    assert parse_rollback(b'{"alias": "serving-short"}').alias == "serving-short"
    with pytest.raises(BadRequest, match="alias"):
        parse_rollback(b'{"alias": 3}')
