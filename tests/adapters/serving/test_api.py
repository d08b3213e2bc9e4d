"""Request models: bad bodies give one 400 message naming the field and the bad value."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from lsat.adapters.serving.api import (
    BadRequest,
    PromoteRequest,
    RecommendRequest,
    RollbackRequest,
    ScoreRequest,
    describe_errors,
    parse_body,
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"", "body must be a JSON object, got NoneType"),
        (b"[1, 2]", "body must be a JSON object, got list"),
        (b'{"item_id": "1"}', "user_id: Field required"),
        (b'{"user_id": "", "item_id": "1"}', "user_id: must not be empty"),
        (b'{"user_id": "u"}', 'give "item_id"'),
        (b'{"user_id": "u", "item_ids": []}', "item_ids: must be a non-empty list of ids, got []"),
        (b'{"user_id": "u", "item_ids": [1.5]}', "item_ids[0]: must be a string or integer id"),
        (b'{"user_id": "u", "item_id": "1", "history": [{"item_id": "2"}]}', "history[0].label"),
        (
            b'{"user_id": "u", "item_id": "1", "history": [{"item_id": "2", "label": 3}]}',
            "history[0].label: must be 0 or 1 (or a boolean), got 3",
        ),
        (b'{"user_id": true, "item_id": "1"}', "user_id: must be a string or integer id, got True"),
        (b'{"user_id": "u\\u0000", "item_id": "1"}', "control characters"),
        (b'{"user_id": "' + b"x" * 300 + b'", "item_id": "1"}', "300 characters; at most 256"),
        (b'{"user_id": "u", "item_id": "1", "extra": 1}', "unknown field 'extra'"),
    ],
)
def test_bad_score_bodies_name_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(message)):
        parse_body(ScoreRequest, raw)


def test_lone_surrogates_are_refused_after_json_decoding() -> None:
    # the HTTP layer decodes with json.loads (which accepts "\ud800"), then validates
    with pytest.raises(ValidationError, match="lone surrogates"):
        ScoreRequest.model_validate(json.loads(b'{"user_id": "u\\ud800", "item_id": "1"}'))


def test_score_body_with_history() -> None:
    body = b'{"user_id": 5, "item_ids": ["a", 7], "history": [{"item_id": 3, "label": true}]}'
    request = parse_body(ScoreRequest, body)
    assert (request.user_id, request.items, request.history_pairs()) == (
        "5",
        ["a", "7"],
        (("3", 1),),
    )
    assert parse_body(ScoreRequest, b'{"user_id": 5, "item_id": 8}').items == ["8"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"user_id": "u", "candidates": ["a"], "k": 0}', "k: must be a positive integer, got 0"),
        (b'{"user_id": "u", "candidates": ["a"], "k": "3"}', "k: must be a positive integer"),
        (b'{"user_id": "u", "candidates": "a", "k": 1}', "candidates: must be a non-empty list"),
    ],
)
def test_bad_recommend_bodies(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(message)):
        parse_body(RecommendRequest, raw)


def test_recommend_defaults_to_ten_and_candidates_may_be_left_out() -> None:
    assert parse_body(RecommendRequest, b'{"user_id": "u", "candidates": ["a"]}').k == 10
    assert parse_body(RecommendRequest, b'{"user_id": "u"}').candidates is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"kind": "short", "version": 2}', ("short", 2, "serving-short")),
        (b'{"kind": "long", "version": 1, "alias": "candidate"}', ("long", 1, "candidate")),
    ],
)
def test_promote_bodies(raw: bytes, expected: tuple[str, int, str]) -> None:
    request = parse_body(PromoteRequest, raw)
    assert (request.kind, request.version, request.alias) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"kind": "mid", "version": 1}', "kind must be one of"),
        (b'{"kind": "short", "version": 0}', "version: must be a positive integer, got 0"),
        (b"{}", "kind: Field required; version: Field required"),
    ],
)
def test_bad_promote_bodies(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(message)):
        parse_body(PromoteRequest, raw)


def test_rollback_needs_an_alias() -> None:
    assert parse_body(RollbackRequest, b'{"alias": "serving-short"}').alias == "serving-short"
    with pytest.raises(BadRequest, match="alias"):
        parse_body(RollbackRequest, b'{"alias": 3}')


def test_many_errors_are_capped() -> None:
    errors = [{"type": "x", "loc": ("body", "f", i), "msg": "bad"} for i in range(8)]
    assert describe_errors(errors).endswith("f[4]: bad; and 3 more")
