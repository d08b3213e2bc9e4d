"""The resumable state of one experiment run, kept as ``state.json`` in its output folder.

After each finished update period the runner records the period's result rows, which adapters
were trained (the train log), and which adapters later periods still need (static, long, the
current fine-tuned one) with the folders they were saved to. A rerun with the same
configuration continues after the last finished period; another configuration is refused.

>>> import tempfile
>>> out = Path(tempfile.mkdtemp())
>>> state = open_state(out, {"periods": 4})
>>> state.completed, state.next_period()
([], 1)
>>> state.completed.append(1); state.save()
>>> open_state(out, {"periods": 4}).next_period()
2
>>> open_state(out, {"periods": 5})
Traceback (most recent call last):
...
lsat.adapters.experiment.strategies.ConfigMismatchError: refusing ... (periods: 4 -> 5). Use ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsat.adapters.experiment.strategies import ConfigMismatchError, ExperimentError

__all__ = ["STATE_FILE", "RunState", "TrainRecord", "config_differences", "open_state"]

STATE_FILE = "state.json"
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class TrainRecord:
    """One adapter actually trained (shared adapters appear once, with every role using it)."""

    period: int
    adapter: str
    roles: tuple[str, ...]
    train_samples: int
    seconds: float
    val_auc: float
    kept: bool = True
    init_from: str | None = None


@dataclass
class RunState:
    """What a run has finished; mutate it, then :meth:`save` (atomic replace)."""

    path: Path
    config: dict[str, Any]
    completed: list[int] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    saved: dict[str, str] = field(default_factory=dict)
    train_log: list[TrainRecord] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    oos: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """Out-of-sample P(like) per test period and adapter role (what the hybrid is fitted on)."""

    def next_period(self) -> int:
        """The first update period not finished yet (1 for a fresh run)."""
        return max(self.completed, default=0) + 1

    def save(self) -> None:
        """Write ``state.json`` atomically (temp file + fsync + rename)."""
        payload = {
            "version": STATE_VERSION,
            "config": self.config,
            "completed": self.completed,
            "roles": self.roles,
            "saved": self.saved,
            "train_log": [asdict(r) for r in self.train_log],
            "rows": self.rows,
            "oos": self.oos,
        }
        tmp = self.path.with_suffix(".json.tmp")
        with tmp.open("w") as handle:
            json.dump(payload, handle, indent=1, default=_json_default)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)


def _json_default(value: object) -> object:
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in state.json")


def _normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as it reads back from JSON (tuples become lists, and so on)."""
    return json.loads(json.dumps(dict(config), default=_json_default))


def config_differences(
    old: Mapping[str, Any], new: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> list[str]:
    """Human-readable differences between two configurations, one ``key: old -> new`` each.

    A setting absent from ``old`` (added to the configuration later) whose new value is its
    entry in ``defaults`` is no difference: older runs resume.

    >>> config_differences({"a": 1, "b": [1]}, {"a": 2, "b": (1,), "c": None})
    ['a: 1 -> 2', 'c: (absent) -> None']
    >>> config_differences({"a": 1}, {"a": 1, "c": "x"}, defaults={"c": "x"})
    []
    """
    old_n, new_n = _normalise(old), _normalise(new)
    known = _normalise(defaults or {})
    out = []
    for key in sorted(set(old_n) | set(new_n)):
        a = old_n.get(key, "(absent)")
        b = new_n.get(key, "(absent)")
        if key not in old_n and key in known and known[key] == b:
            continue
        if a != b:
            out.append(f"{key}: {a} -> {b}")
    return out


def open_state(
    out_dir: Path, config: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> RunState:
    """Load ``out_dir/state.json`` for resuming, or start a fresh state.

    ``defaults`` are the values of settings added after older runs (see config_differences).

    Raises :class:`ConfigMismatchError` (listing each differing setting) when the folder holds
    a run with another configuration, and :class:`ExperimentError` for an unreadable file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / STATE_FILE
    wanted = _normalise(config)
    if not path.exists():
        return RunState(path=path, config=wanted)
    try:
        payload = json.loads(path.read_text())
        stored = payload["config"]
        log = [TrainRecord(**{**r, "roles": tuple(r["roles"])}) for r in payload["train_log"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExperimentError(
            f"cannot resume from {path}: unreadable state ({exc}); use another --out folder"
        ) from exc
    differences = config_differences(stored, wanted, defaults)
    if differences:
        raise ConfigMismatchError(
            f"refusing to resume {out_dir}: it holds a run with another configuration ("
            + "; ".join(differences)
            + "). Use the same settings, or another --out folder."
        )
    return RunState(
        path=path,
        config=stored,
        completed=[int(p) for p in payload["completed"]],
        roles=dict(payload["roles"]),
        saved=dict(payload["saved"]),
        train_log=log,
        rows=list(payload["rows"]),
        oos={str(k): dict(v) for k, v in payload.get("oos", {}).items()},
    )
