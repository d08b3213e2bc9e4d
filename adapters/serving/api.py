"""Request and response bodies of the scoring API as pydantic models (the OpenAPI schema), and
the one error message a failed validation turns into (table-tested, no server needed).

Ids are strings inside the system; a request may give them as strings or integers. Unknown
fields are refused, so a misspelt field never passes silently.

>>> parse_body(ScoreRequest, b'{"user_id": "u1", "item_id": 7}').item_ids
['7']
>>> parse_body(RecommendRequest, b'{"user_id": 5, "candidates": ["a", "b"], "k": 1}').k
1
>>> parse_body(ScoreRequest, b'{"user_id": "u1"}')
Traceback (most recent call last):
...
lsat.adapters.serving.api.BadRequest: give "item_id" or a non-empty "item_ids" list
>>> parse_body(ScoreRequest, b'{"user_id": "u1", "item_id": 1, "itemz": [2]}')
Traceback (most recent call last):
...
lsat.adapters.serving.api.BadRequest: unknown field 'itemz'
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from lsat.adapters.lifecycle.publication import SERVING_ALIASES
from lsat.adapters.serving.state import ServingError
from lsat.core.kinds import ADAPTER_KINDS

__all__ = [
    "MAX_ID_CHARS",
    "MAX_ITEMS",
    "AdaptersResponse",
    "BadRequest",
    "ErrorBody",
    "HealthResponse",
    "HistoryEntry",
    "PromoteRequest",
    "RankedItem",
    "ReadyResponse",
    "RecommendRequest",
    "RecommendResponse",
    "RollbackRequest",
    "ScoreRequest",
    "ScoreResponse",
    "ScoredItem",
    "TooLarge",
    "describe_errors",
    "parse_body",
]

MAX_ITEMS = 1000
"""Default for the most items one request may score (``Scorer(max_candidates=...)``)."""
MAX_ID_CHARS = 256
"""Longest id accepted."""


class BadRequest(ServingError, ValueError):
    """A request the API answers with 400; the message names the bad field and value."""


class TooLarge(ServingError):
    """A request over a size limit (body bytes, items per request): answered with 413."""


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{message}", {"message": message})


def _to_id(value: object) -> str:
    """An id: a non-empty string or an integer, without control characters or lone surrogates.

    >>> _to_id(" 42 "), _to_id(7)
    ('42', '7')
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail("id_type", f"must be a string or integer id, got {value!r:.80}")
    text = str(value).strip()
    if not text:
        raise _fail("id_empty", "must not be empty")
    if len(text) > MAX_ID_CHARS:
        raise _fail("id_too_long", f"has {len(text)} characters; at most {MAX_ID_CHARS}")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in text):
        raise _fail(
            "id_chars", f"must not hold control characters or lone surrogates: {text!r:.80}"
        )
    return text


def _to_ids(value: object) -> object:
    if not isinstance(value, list) or not value:
        raise _fail("ids", f"must be a non-empty list of ids, got {value!r:.80}")
    return value


def _to_label(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int) or value not in (0, 1):
        raise _fail("label", f"must be 0 or 1 (or a boolean), got {value!r:.80}")
    return value


def _to_positive(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail("positive", f"must be a positive integer, got {value!r:.80}")
    return value


Id = Annotated[
    str,
    BeforeValidator(_to_id),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
                {"type": "integer"},
            ],
            "description": "an id: a string (no control characters) or an integer",
        }
    ),
]
Ids = Annotated[list[Id], BeforeValidator(_to_ids), Field(min_length=1)]
Label = Annotated[
    int,
    BeforeValidator(_to_label),
    WithJsonSchema({"anyOf": [{"enum": [0, 1]}, {"type": "boolean"}], "description": "liked?"}),
]
Positive = Annotated[int, BeforeValidator(_to_positive), Field(ge=1)]

_REQUEST = ConfigDict(extra="forbid")
_RESPONSE = ConfigDict(extra="allow")


class HistoryEntry(BaseModel):
    """One past interaction: the item and whether the user liked it (1) or not (0)."""

    model_config = _REQUEST
    item_id: Id
    label: Label


History = list[HistoryEntry] | None


def _pairs(history: History) -> tuple[tuple[str, int], ...] | None:
    return None if history is None else tuple((h.item_id, h.label) for h in history)


class ScoreRequest(BaseModel):
    """``POST /score``: a user, the items to score (``item_id`` or ``item_ids``), optionally the
    user's history (else the stream store's)."""

    model_config = _REQUEST
    user_id: Id
    item_id: Id | None = None
    item_ids: Ids | None = None
    history: History = None

    @model_validator(mode="after")
    def _one_item_at_least(self) -> ScoreRequest:
        if self.item_ids is None:
            if self.item_id is None:
                raise _fail("items", 'give "item_id" or a non-empty "item_ids" list')
            self.item_ids = [self.item_id]
        return self

    @property
    def items(self) -> list[str]:
        """The items to score (``item_ids``, or ``[item_id]``)."""
        return self.item_ids or []

    def history_pairs(self) -> tuple[tuple[str, int], ...] | None:
        """The history as (item_id, label) pairs."""
        return _pairs(self.history)


class RecommendRequest(BaseModel):
    """``POST /recommend``: rank ``candidates`` for a user and keep the top ``k``; without
    ``candidates``, the store's most liked recent items the user has not interacted with."""

    model_config = _REQUEST
    user_id: Id
    candidates: Ids | None = None
    k: Positive = 10
    history: History = None

    def history_pairs(self) -> tuple[tuple[str, int], ...] | None:
        """The history as (item_id, label) pairs."""
        return _pairs(self.history)


class PromoteRequest(BaseModel):
    """``POST /admin/promote``: point ``alias`` (default ``serving-<kind>``) at kind/version."""

    model_config = _REQUEST
    kind: str = Field(json_schema_extra={"enum": list(ADAPTER_KINDS)})
    version: Positive
    alias: str | None = None

    @model_validator(mode="after")
    def _known_kind(self) -> PromoteRequest:
        if self.kind not in ADAPTER_KINDS:
            raise _fail("kind", f"kind must be one of {list(ADAPTER_KINDS)}, got {self.kind!r}")
        if not self.alias:
            self.alias = SERVING_ALIASES[self.kind]
        return self


class RollbackRequest(BaseModel):
    """``POST /admin/rollback``: restore the previous target of ``alias``."""

    model_config = _REQUEST
    alias: str = Field(min_length=1)


class ScoredItem(BaseModel):
    """P(like) of one item per serving adapter kind (absent kinds are omitted) and combined."""

    model_config = _RESPONSE
    item_id: str
    title: str | None
    p_long: float | None = None
    p_short: float | None = None
    p_merged: float | None = None
    p_combined: float


class ScoreResponse(BaseModel):
    """Answer of ``POST /score``; every number comes from the one serving set in ``versions``."""

    model_config = _RESPONSE
    user_id: str
    items: list[ScoredItem]
    versions: dict[str, int]
    alpha: float
    history_length: int


class RankedItem(BaseModel):
    """One recommended item and its combined score."""

    model_config = _RESPONSE
    item_id: str
    title: str | None
    score: float


class RecommendResponse(BaseModel):
    """Answer of ``POST /recommend``: the top ``k``, best first."""

    model_config = _RESPONSE
    user_id: str
    items: list[RankedItem]
    versions: dict[str, int]
    alpha: float


class AdaptersResponse(BaseModel):
    """``GET /adapters``: the serving set (versions, weights' sha256, ensemble α)."""

    model_config = _RESPONSE
    versions: dict[str, int]
    sha256: dict[str, str]
    alpha: float
    merge_weight: float | None
    window_id: int | str | None
    published_s: float | None
    since_s: float


class HealthResponse(BaseModel):
    """``GET /healthz``: ``ok`` while the process can do its job; ``reason`` when it cannot."""

    model_config = _RESPONSE
    status: str
    serving: bool
    reason: str | None = None


class ReadyResponse(BaseModel):
    """``GET /readyz``: ``ready`` when every check passes; ``checks`` says each one's state."""

    model_config = _RESPONSE
    status: str
    checks: dict[str, str]


class ErrorBody(BaseModel):
    """Every error answer: what went wrong (never internals) and the request's id."""

    error: str
    request_id: str | None = None


def _where(loc: Sequence[int | str]) -> str:
    """``("history", 0, "label")`` → ``history[0].label``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def describe_errors(errors: Sequence[Mapping[str, Any]], limit: int = 5) -> str:
    """One message for pydantic/FastAPI validation errors: where, what, and the bad value.

    >>> describe_errors([{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error",
    ...                   "ctx": {"error": "Expecting value"}}])
    'body is not valid JSON: Expecting value'
    >>> describe_errors([{"type": "label", "loc": ("body", "history", 0, "label"),
    ...                   "msg": "must be 0 or 1 (or a boolean), got 3"}])
    'history[0].label: must be 0 or 1 (or a boolean), got 3'
    >>> describe_errors([{"type": "missing", "loc": ("body", "user_id"), "msg": "Field required"}])
    'user_id: Field required'
    """
    parts = []
    for error in errors[:limit]:
        kind, ctx = error.get("type"), error.get("ctx") or {}
        loc = list(error.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        where = _where(loc)
        if kind == "json_invalid":
            parts.append(f"body is not valid JSON: {ctx.get('error', error.get('msg'))}")
        elif kind == "extra_forbidden":
            parts.append(f"unknown field {where!r}")
        elif kind == "missing" and not where:
            parts.append("body is required: a JSON object")
        elif kind in ("model_attributes_type", "dict_type", "model_type") and not where:
            got = type(error.get("input")).__name__
            parts.append(f"body must be a JSON object, got {got}")
        else:
            parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], raw: bytes) -> M:
    """Validate a JSON body as ``model``; :class:`BadRequest` with :func:`describe_errors`."""
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise BadRequest(describe_errors(exc.errors(include_url=False))) from None
