"""Request bodies of the scoring API, parsed and checked without a model (table-tested).

>>> parse_score(b'{"user_id": "u1", "item_id": 7}').item_ids
('7',)
>>> parse_recommend(b'{"user_id": "u1", "candidates": ["a", "b"], "k": 1}').k
1
>>> parse_score(b'{"user_id": "u1"}')
Traceback (most recent call last):
...
lsat.adapters.serving.api.BadRequest: give "item_id" or a non-empty "item_ids" list
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lsat.adapters.lifecycle.publication import SERVING_ALIASES
from lsat.adapters.lifecycle.registry import ADAPTER_KINDS
from lsat.adapters.serving.state import ServingError

__all__ = [
    "MAX_ITEMS",
    "BadRequest",
    "PromoteRequest",
    "RecommendRequest",
    "RollbackRequest",
    "ScoreRequest",
    "parse_promote",
    "parse_recommend",
    "parse_rollback",
    "parse_score",
]

MAX_ITEMS = 1000
"""Most items one request may score."""


class BadRequest(ServingError, ValueError):
    """A request the API answers with 400; the message names the bad field and value."""


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """``POST /score``: a user, the items to score, optionally their history."""

    user_id: str
    item_ids: tuple[str, ...]
    history: tuple[tuple[str, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class RecommendRequest:
    """``POST /recommend``: rank ``candidates`` for a user and keep the top ``k``."""

    user_id: str
    candidates: tuple[str, ...]
    k: int
    history: tuple[tuple[str, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class PromoteRequest:
    """``POST /admin/promote``: point ``alias`` at ``kind``/``version``."""

    kind: str
    version: int
    alias: str


@dataclass(frozen=True, slots=True)
class RollbackRequest:
    """``POST /admin/rollback``: restore the previous target of ``alias``."""

    alias: str


def _object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object, got {type(data).__name__}")
    return data


def _id(value: object, name: str) -> str:
    """An id: a non-empty string or an integer (ids are strings inside the system)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadRequest(f"{name} must be a string or integer id, got {value!r}")
    text = str(value).strip()
    if not text:
        raise BadRequest(f"{name} must not be empty")
    return text


def _ids(values: object, name: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not values:
        raise BadRequest(f"{name} must be a non-empty list of ids, got {values!r:.80}")
    if len(values) > MAX_ITEMS:
        raise BadRequest(f"{name} has {len(values)} ids; at most {MAX_ITEMS} per request")
    return tuple(_id(v, f"{name}[{i}]") for i, v in enumerate(values))


def _history(value: object) -> tuple[tuple[str, int], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequest(f"history must be a list of {{item_id, label}}, got {value!r:.80}")
    pairs = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or "item_id" not in entry or "label" not in entry:
            raise BadRequest(f"history[{i}] must be {{item_id, label}}, got {entry!r:.80}")
        label = entry["label"]
        if isinstance(label, bool):
            label = int(label)
        if label not in (0, 1):
            raise BadRequest(f"history[{i}].label must be 0 or 1, got {label!r}")
        pairs.append((_id(entry["item_id"], f"history[{i}].item_id"), int(label)))
    return tuple(pairs)


def parse_score(raw: bytes) -> ScoreRequest:
    """Parse ``POST /score``: ``{user_id, item_id | item_ids, history?}``."""
    data = _object(raw)
    user_id = _id(data.get("user_id"), "user_id")
    if "item_ids" in data:
        items = _ids(data["item_ids"], "item_ids")
    elif "item_id" in data:
        items = (_id(data["item_id"], "item_id"),)
    else:
        raise BadRequest('give "item_id" or a non-empty "item_ids" list')
    return ScoreRequest(user_id, items, _history(data.get("history")))


def parse_recommend(raw: bytes) -> RecommendRequest:
    """Parse ``POST /recommend``: ``{user_id, candidates, k, history?}`` (``k`` defaults to 10)."""
    data = _object(raw)
    user_id = _id(data.get("user_id"), "user_id")
    candidates = _ids(data.get("candidates"), "candidates")
    k = data.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise BadRequest(f"k must be a positive integer, got {k!r}")
    return RecommendRequest(user_id, candidates, k, _history(data.get("history")))


def parse_promote(raw: bytes) -> PromoteRequest:
    """Parse ``POST /admin/promote``: ``{kind, version, alias?}`` (default serving-KIND)."""
    data = _object(raw)
    kind, version = data.get("kind"), data.get("version")
    if kind not in ADAPTER_KINDS:
        raise BadRequest(f"kind must be one of {list(ADAPTER_KINDS)}, got {kind!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadRequest(f"version must be an integer >= 1, got {version!r}")
    alias = data.get("alias") or SERVING_ALIASES[kind]
    if not isinstance(alias, str):
        raise BadRequest(f"alias must be a string, got {alias!r}")
    return PromoteRequest(kind, version, alias)


def parse_rollback(raw: bytes) -> RollbackRequest:
    """Parse ``POST /admin/rollback``: ``{alias}``."""
    alias = _object(raw).get("alias")
    if not isinstance(alias, str) or not alias:
        raise BadRequest(f"alias must be a non-empty string, got {alias!r}")
    return RollbackRequest(alias)
