"""The ``adapter.versions`` message: the whole serving set, published on every promotion.

A scorer swaps to a :class:`ServingSet` atomically (long, short, merged, α and merge weight all
at once), so one response never mixes adapters of two promotions. The registry aliases
``serving-long`` / ``serving-short`` / ``serving-merged`` are the source of truth;
:func:`current_serving_set` rebuilds the message from them (α and the merge weight are stored in
the serving short / merged version's ``metrics`` under :data:`ALPHA_METRIC` /
:data:`MERGE_WEIGHT_METRIC`). A hybrid combiner (a logistic regression over the adapters' logits
and collaborative features, :mod:`lsat.adapters.model.hybrid`) travels the same way, under
:data:`HYBRID_METRIC` of the serving short version (else of the long version: its bootstrap's
rates-only combiner); a message without one (every message before it existed) still parses.

>>> ref = AdapterRef("short", 3, "/a/short-3", "b" * 64)
>>> message = ServingSet(long=None, short=ref, merged=None, alpha=0.0, merge_weight=None,
...                      window_id=7, published_s=1.5)
>>> ServingSet.from_json(message.to_json()) == message
True
>>> ServingSet.from_json(b'{"schema": 99}')
Traceback (most recent call last):
...
lsat.adapters.lifecycle.publication.PublicationError: adapter.versions message has schema=99; this \
reader \
understands schema 1
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.model.errors import AdapterError
from lsat.adapters.model.hybrid import HybridCombiner, HybridError
from lsat.core.kinds import ADAPTER_KINDS

__all__ = [
    "ALPHA_METRIC",
    "HYBRID_METRIC",
    "MERGE_WEIGHT_METRIC",
    "SCHEMA_VERSION",
    "SERVING_ALIASES",
    "AdapterRef",
    "PublicationError",
    "ServingSet",
    "current_serving_set",
    "serving_hybrid",
]

SCHEMA_VERSION = 1
ALPHA_METRIC = "alpha"
MERGE_WEIGHT_METRIC = "merge_weight"
HYBRID_METRIC = "hybrid"
SERVING_ALIASES: dict[str, str] = {kind: f"serving-{kind}" for kind in ADAPTER_KINDS}
"""Alias that names the serving version of each kind: ``{"long": "serving-long", ...}``."""


class PublicationError(AdapterError, ValueError):
    """A malformed ``adapter.versions`` message; the message names the bad field and value."""


@dataclass(frozen=True, slots=True)
class AdapterRef:
    """Where one served adapter lives: ``kind``, registry ``version``, the trainer's folder
    ``path``, the weights' sha256 and the artifact store's ``uri`` (``None`` in messages from
    before URIs: the folder at ``path``). Scorers fetch :attr:`location`.

    >>> AdapterRef("short", 3, "/a/short-3", "b" * 64, "db://artifacts/" + "c" * 64).location[:15]
    'db://artifacts/'
    """

    kind: str
    version: int
    path: str
    sha256: str
    uri: str | None = None

    @property
    def location(self) -> str:
        """What to fetch: the ``uri``, else the ``path`` (read as a local folder)."""
        return self.uri or self.path

    @classmethod
    def of(cls, version: AdapterVersion) -> AdapterRef:
        """The reference of a registered version."""
        return cls(version.kind, version.version, version.path, version.sha256, version.uri)

    @classmethod
    def from_dict(cls, data: Any, field_name: str) -> AdapterRef | None:
        """Read one reference (or ``None``) from decoded JSON; raise on a bad shape."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise PublicationError(f"{field_name} must be an object or null, got {data!r}")
        kind, version = data.get("kind"), data.get("version")
        path, sha256 = data.get("path"), data.get("sha256")
        if kind not in ADAPTER_KINDS or kind != field_name:
            raise PublicationError(f"{field_name}.kind={kind!r}; expected {field_name!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise PublicationError(f"{field_name}.version={version!r}; expected an integer >= 1")
        if not isinstance(path, str) or not path:
            raise PublicationError(f"{field_name}.path={path!r}; expected a non-empty string")
        if not isinstance(sha256, str) or len(sha256) != 64:
            raise PublicationError(f"{field_name}.sha256={sha256!r}; expected 64 hex characters")
        uri = data.get("uri")
        if uri is not None and (not isinstance(uri, str) or "://" not in uri):
            raise PublicationError(f"{field_name}.uri={uri!r}; expected null or scheme://…")
        return cls(kind, version, path, sha256, uri)


@dataclass(frozen=True, slots=True)
class ServingSet:
    """Everything a scorer serves, swapped as one unit.

    ``alpha`` weighs the long adapter in ``α·P_long + (1−α)·P_short`` (0 when no long adapter
    exists yet: short alone); ``merge_weight`` is the long share of the ΔW merge that built
    ``merged`` (``None`` without one); ``window_id`` is the window the short adapter learnt;
    ``hybrid`` is the learned combiner served as the combined score (``None``: the α ensemble).
    """

    long: AdapterRef | None
    short: AdapterRef | None
    merged: AdapterRef | None
    alpha: float
    merge_weight: float | None
    window_id: int | None
    published_s: float
    hybrid: HybridCombiner | None = None

    def __post_init__(self) -> None:
        _check_weight("alpha", self.alpha)
        if self.merge_weight is not None:
            _check_weight("merge_weight", self.merge_weight)
        if self.long is None and self.short is None and self.merged is None:
            raise PublicationError("a serving set needs at least one adapter")

    @property
    def keys(self) -> dict[str, int]:
        """``{kind: version}`` of the adapters in the set."""
        return {ref.kind: ref.version for ref in (self.long, self.short, self.merged) if ref}

    def to_json(self) -> bytes:
        """Encode as UTF-8 JSON with a ``schema`` version field."""
        payload = {"schema": SCHEMA_VERSION, **asdict(self)}
        payload["hybrid"] = None if self.hybrid is None else self.hybrid.to_dict()
        return json.dumps(payload, sort_keys=True, allow_nan=False).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str) -> ServingSet:
        """Decode a message written by :meth:`to_json`; :class:`PublicationError` if malformed."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PublicationError(f"adapter.versions message is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise PublicationError(f"adapter.versions message must be an object, got {data!r}")
        if data.get("schema") != SCHEMA_VERSION:
            raise PublicationError(
                f"adapter.versions message has schema={data.get('schema')!r}; "
                f"this reader understands schema {SCHEMA_VERSION}"
            )
        window_id, published_s = data.get("window_id"), data.get("published_s")
        if window_id is not None and (
            isinstance(window_id, bool) or not isinstance(window_id, int)
        ):
            raise PublicationError(f"window_id={window_id!r}; expected an integer or null")
        if not _is_number(published_s):
            raise PublicationError(f"published_s={published_s!r}; expected a number")
        merge_weight = data.get("merge_weight")
        hybrid = data.get("hybrid")
        if hybrid is not None:
            hybrid = _combiner(hybrid)
        return cls(
            long=AdapterRef.from_dict(data.get("long"), "long"),
            short=AdapterRef.from_dict(data.get("short"), "short"),
            merged=AdapterRef.from_dict(data.get("merged"), "merged"),
            alpha=_number("alpha", data.get("alpha")),
            merge_weight=None if merge_weight is None else _number("merge_weight", merge_weight),
            window_id=window_id,
            published_s=float(published_s),
            hybrid=hybrid,
        )


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(name: str, value: object) -> float:
    if not _is_number(value):
        raise PublicationError(f"{name}={value!r}; expected a finite number")
    return float(value)


def _combiner(data: object) -> HybridCombiner:
    if not isinstance(data, dict):
        raise PublicationError(f"hybrid={data!r}; expected an object or null")
    try:
        return HybridCombiner.from_dict(data)
    except HybridError as exc:
        raise PublicationError(f"hybrid: {exc}") from None


def _check_weight(name: str, value: float) -> None:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise PublicationError(f"{name}={value!r}; expected a number in [0, 1]")


def current_serving_set(
    registry: RegistryStore, *, published_s: float | None = None
) -> ServingSet | None:
    """The serving set the registry's ``serving-*`` aliases describe (``None`` if none is set).

    α comes from the serving short version's metrics (0 without a long adapter; 1 — long alone —
    without a short one); the merge weight from the serving merged version's metrics; the hybrid
    combiner from :func:`serving_hybrid` (the short version's, else the long version's).
    """
    serving = {kind: registry.resolve(alias) for kind, alias in SERVING_ALIASES.items()}
    long, short, merged = serving["long"], serving["short"], serving["merged"]
    if long is None and short is None and merged is None:
        return None
    if short is None:
        alpha = 1.0
    elif long is None:
        alpha = 0.0
    else:
        alpha = float(short.metrics.get(ALPHA_METRIC, 0.5))
    merge_weight = None
    if merged is not None and merged.metrics.get(MERGE_WEIGHT_METRIC) is not None:
        merge_weight = float(merged.metrics[MERGE_WEIGHT_METRIC])
    window_id = _window_of(short)
    hybrid, _ = serving_hybrid(short, long)
    return ServingSet(
        long=None if long is None else AdapterRef.of(long),
        short=None if short is None else AdapterRef.of(short),
        merged=None if merged is None else AdapterRef.of(merged),
        alpha=alpha,
        merge_weight=merge_weight,
        window_id=window_id,
        published_s=time.time() if published_s is None else published_s,
        hybrid=hybrid,
    )


def serving_hybrid(
    short: AdapterVersion | None, long: AdapterVersion | None
) -> tuple[HybridCombiner | None, AdapterVersion | None]:
    """The combiner that serves and the version whose metrics hold it: the short version's
    (the one its window's job chose), else the long version's (the rates-only combiner its
    bootstrap fitted, serving until the first short version brings one); a malformed one is
    skipped. ``(None, None)``: the α ensemble serves."""
    for version in (short, long):
        data = None if version is None else version.metrics.get(HYBRID_METRIC)
        if isinstance(data, dict):
            try:
                return HybridCombiner.from_dict(data), version
            except HybridError:
                continue
    return None, None


def _window_of(version: AdapterVersion | None) -> int | None:
    if version is None or not version.window_ids:
        return None
    try:
        return int(version.window_ids[-1])
    except (TypeError, ValueError):
        return None
