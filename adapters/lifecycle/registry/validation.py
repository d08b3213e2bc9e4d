"""Checks run on every argument before the registry writes anything.

Each returns the normalised value or raises :class:`InvalidRegistryValue` naming the bad one.

>>> check_kind("short")
'short'
>>> check_alias("serving-short", kind="long")
Traceback (most recent call last):
...
lsat.adapters.lifecycle.registry.errors.InvalidRegistryValue: invalid alias='serving-short': ... \
only, ...
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lsat.adapters.lifecycle.registry.entities import (
    ADAPTER_STATUSES,
    AdapterKey,
    WindowId,
)
from lsat.adapters.lifecycle.registry.errors import InvalidRegistryValue
from lsat.core.kinds import ADAPTER_KINDS

__all__ = [
    "check_alias",
    "check_count",
    "check_kind",
    "check_metrics",
    "check_parents",
    "check_path",
    "check_score",
    "check_sha256",
    "check_status",
    "check_text",
    "check_uri",
    "check_version",
    "check_window_ids",
]

_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRIGGER = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def check_kind(kind: object) -> str:
    """One of :data:`lsat.core.kinds.ADAPTER_KINDS`."""
    if kind not in ADAPTER_KINDS:
        raise InvalidRegistryValue("kind", kind, f"expected one of {', '.join(ADAPTER_KINDS)}")
    return str(kind)


def check_version(version: object) -> int:
    """A positive int (bools are refused)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidRegistryValue("version", version, "expected an integer >= 1")
    return version


def check_status(status: object) -> str:
    """One of :data:`ADAPTER_STATUSES`."""
    if status not in ADAPTER_STATUSES:
        raise InvalidRegistryValue(
            "status", status, f"expected one of {', '.join(ADAPTER_STATUSES)}"
        )
    return str(status)


def check_alias(alias: object, *, kind: str | None = None) -> str:
    """1-64 of ``[A-Za-z0-9._-]``; ``serving-<kind>`` may only point at that kind."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidRegistryValue(
            "alias", alias, "expected 1-64 characters of letters, digits, '.', '_', '-'"
        )
    prefix, _, suffix = alias.partition("-")
    if kind is not None and prefix == "serving" and suffix in ADAPTER_KINDS and suffix != kind:
        raise InvalidRegistryValue("alias", alias, f"points at kind {suffix!r} only, not {kind!r}")
    return alias


def check_text(name: str, value: object, *, max_len: int = 2000) -> str:
    """A non-blank string (reasons, actors)."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidRegistryValue(name, value, f"expected a non-blank string of <= {max_len}")
    return value.strip()


def check_trigger(trigger: object) -> str | None:
    """``None`` or a short lowercase word (full, span, drift, manual, bootstrap, ...)."""
    if trigger is None:
        return None
    if not isinstance(trigger, str) or not _TRIGGER.match(trigger):
        raise InvalidRegistryValue("trigger", trigger, "expected a lowercase word of <= 32")
    return trigger


def check_sha256(sha256: object) -> str:
    """64 hex digits (stored lowercase)."""
    text = sha256.lower() if isinstance(sha256, str) else sha256
    if not isinstance(text, str) or not _SHA256.match(text):
        raise InvalidRegistryValue("sha256", sha256, "expected 64 hexadecimal digits")
    return text


def check_path(path: object) -> str:
    """A non-empty ``str`` or ``Path`` (the artifact folder; not required to exist here)."""
    if not isinstance(path, str | Path) or not str(path).strip():
        raise InvalidRegistryValue("path", path, "expected a non-empty path")
    return str(path)


def check_uri(uri: object) -> str:
    """An artifact URI: ``scheme://rest``, at most 2,000 characters, no whitespace."""
    text = uri if isinstance(uri, str) else ""
    scheme, sep, rest = text.partition("://")
    if (
        not (sep and scheme.isalpha() and rest)
        or len(text) > 2000
        or any(c.isspace() for c in text)
    ):
        raise InvalidRegistryValue("uri", uri, "expected scheme://… (e.g. db://artifacts/<sha>)")
    return text


def check_window_ids(window_id: WindowId | Iterable[WindowId] | None) -> list[WindowId]:
    """``None``, one id or several, as a list of str/int ids."""
    if window_id is None:
        return []
    ids = [window_id] if isinstance(window_id, str | int) else list(window_id)
    for item in ids:
        if isinstance(item, bool) or not isinstance(item, str | int) or item == "":
            raise InvalidRegistryValue("window_id", item, "expected a non-empty str or an int")
    return ids


def check_parents(parents: Iterable[AdapterKey | tuple[str, int]]) -> list[AdapterKey]:
    """``(kind, version)`` pairs; existence is checked by the store."""
    keys = []
    for parent in parents:
        if isinstance(parent, AdapterKey):
            kind, version = parent.kind, parent.version
        else:
            try:
                kind, version = parent
            except (TypeError, ValueError):
                raise InvalidRegistryValue("parents", parent, "expected (kind, version)") from None
        keys.append(AdapterKey(check_kind(kind), check_version(version)))
    return keys


def check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON object with string keys and finite numbers (NaN/inf are refused)."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidRegistryValue("metrics", metrics, "expected a mapping")
    _check_json("metrics", metrics)
    return json.loads(json.dumps(metrics, allow_nan=False))


def _check_json(path: str, value: object) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRegistryValue(path, key, "keys must be strings")
            _check_json(f"{path}.{key}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(f"{path}[{index}]", item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidRegistryValue(path, value, "must be a finite number")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidRegistryValue(path, value, "not a JSON value")


def check_score(name: str, value: object, *, upper: float) -> float | None:
    """``None`` or a finite number in ``[0, upper]`` (AUC: upper 1; logloss: upper inf)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRegistryValue(name, value, "expected a finite number or None")
    if not 0.0 <= value <= upper:
        raise InvalidRegistryValue(name, value, f"expected a value in [0, {upper}]")
    return float(value)


def check_count(name: str, value: object) -> int:
    """An integer >= 0 (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRegistryValue(name, value, "expected an integer >= 0")
    return value
