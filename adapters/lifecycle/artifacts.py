"""Adapter folders on disk: peft's layout plus our ``metadata.json``, written atomically.

A folder holds ``adapter_model.safetensors`` and ``adapter_config.json`` (what peft's
``save_pretrained`` writes, so ``PeftModel.from_pretrained(model, folder)`` loads it) and
``metadata.json``: base model, kind (long|short|merged), data window, metrics, creation time,
library versions and the sha256 of the weights file.

:func:`save_adapter` refuses non-finite weights, writes everything into a hidden temporary folder
beside the target and renames it into place, so a crash never leaves a half-written adapter
visible. :func:`load_adapter` verifies the sha256, reads weights only from safetensors (never
pickle) and refuses NaN/Inf.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftType
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lsat.adapters.model.errors import (
    AdapterArtifactError,
    AdapterExistsError,
    AdapterIntegrityError,
)
from lsat.adapters.model.recommender import LoraRecommender, RecommenderError
from lsat.core.kinds import ADAPTER_KINDS

__all__ = [
    "CONFIG_FILE",
    "METADATA_FILE",
    "WEIGHTS_FILE",
    "LoadedAdapter",
    "load_adapter",
    "load_into_recommender",
    "save_adapter",
    "save_recommender_adapter",
    "sha256_file",
    "write_metadata",
]

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
METADATA_FILE = "metadata.json"
REQUIRED_METADATA = ("base_model", "kind")
UNSAFE_WEIGHT_FILES = ("adapter_model.bin", "pytorch_model.bin", "adapter_model.pt")
_LIBRARIES = ("torch", "peft", "transformers", "safetensors", "lsat-stream")


@dataclass(frozen=True)
class LoadedAdapter:
    """An adapter read back from disk: peft-layout ``state``, its ``config`` and ``metadata``."""

    state: dict[str, torch.Tensor]
    config: LoraConfig
    metadata: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "x"
    ...     _ = path.write_bytes(b"abc")
    ...     sha256_file(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _non_finite_keys(state: Mapping[str, torch.Tensor]) -> list[str]:
    return [
        key
        for key, tensor in state.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]


def _checked_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in REQUIRED_METADATA if not metadata.get(key)]
    if missing:
        raise AdapterArtifactError(
            f"metadata lacks required keys {missing}: got {dict(metadata)!r}"
        )
    if metadata["kind"] not in ADAPTER_KINDS:
        raise AdapterArtifactError(
            f"metadata kind must be one of {ADAPTER_KINDS}, got {metadata['kind']!r}"
        )
    return dict(metadata)


def _fsync_directory(directory: Path) -> None:
    """Make a rename or new file in ``directory`` durable (best effort where unsupported)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _finite_or_none(value: Any) -> Any:
    """Replace NaN/Inf floats (e.g. an AUC on a one-class window) by None, recursively.

    >>> _finite_or_none({"auc": float("nan"), "n": [1.0, float("inf")]})
    {'auc': None, 'n': [1.0, None]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Strict JSON (NaN/Inf written as null, so any parser reads it), fsynced."""
    try:
        text = json.dumps(_finite_or_none(payload), indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AdapterArtifactError(f"metadata is not JSON-serialisable: {exc}") from None
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def write_metadata(directory: Path, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``metadata.json`` for the adapter folder ``directory``; return what was written.

    Adds ``sha256`` (of the weights file), ``created_at`` (UTC, unless given) and
    ``library_versions``. Works on any peft ``save_pretrained`` folder; the file is replaced
    atomically.
    """
    directory = Path(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise AdapterIntegrityError(f"{weights} does not exist: no safetensors weights to describe")
    payload = _checked_metadata(metadata)
    payload.setdefault("created_at", dt.datetime.now(dt.UTC).isoformat())
    payload["library_versions"] = _library_versions()
    payload["sha256"] = sha256_file(weights)
    partial = directory / f".{METADATA_FILE}.{uuid.uuid4().hex}.tmp"
    try:
        _write_json(partial, payload)
        os.replace(partial, directory / METADATA_FILE)
    finally:
        partial.unlink(missing_ok=True)
    _fsync_directory(directory)
    return payload


def save_adapter(
    directory: Path,
    state: Mapping[str, torch.Tensor],
    config: LoraConfig,
    metadata: Mapping[str, Any],
) -> Path:
    """Write an adapter folder at ``directory`` atomically and return its path.

    ``metadata`` needs ``base_model`` and ``kind`` (long|short|merged); ``window``, ``metrics``
    and anything else JSON-serialisable is kept. Existing folders are never overwritten.
    """
    directory = Path(directory)
    if directory.exists():
        raise AdapterExistsError(f"{directory} already exists; adapter folders are immutable")
    if not state:
        raise AdapterArtifactError("refusing to save an empty state dict")
    bad = _non_finite_keys(state)
    if bad:
        raise AdapterIntegrityError(f"refusing to save non-finite weights in {bad[:5]}")
    checked = _checked_metadata(metadata)
    if config.peft_type not in (PeftType.LORA, PeftType.LORA.value):
        raise AdapterArtifactError(f"only LoRA adapters are supported, got {config.peft_type!r}")

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.{uuid.uuid4().hex}.partial"
    staging.mkdir()
    try:
        tensors = {key: tensor.detach().cpu().contiguous().clone() for key, tensor in state.items()}
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        with open(staging / WEIGHTS_FILE, "rb+") as handle:
            os.fsync(handle.fileno())
        config.save_pretrained(str(staging))
        write_metadata(staging, checked)
        _fsync_directory(staging)
        if directory.exists():
            raise AdapterExistsError(f"{directory} appeared while saving; not overwriting it")
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_directory(directory.parent)
    return directory


def _read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    if not path.is_file():
        raise AdapterIntegrityError(
            f"{path} is missing: without it the weights cannot be verified "
            f"(write one with lsat.adapters.lifecycle.artifacts.write_metadata)"
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterIntegrityError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("sha256"), str):
        raise AdapterIntegrityError(f"{path} has no 'sha256' of {WEIGHTS_FILE}")
    return metadata


def _read_config(directory: Path) -> LoraConfig:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise AdapterIntegrityError(f"{path} is missing")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterIntegrityError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("peft_type") != PeftType.LORA.value:
        found = raw.get("peft_type") if isinstance(raw, dict) else raw
        raise AdapterIntegrityError(f"{path} is not a LoRA config (peft_type {found!r})")
    try:
        config = LoraConfig.from_pretrained(str(directory))
    except (TypeError, ValueError) as exc:
        raise AdapterIntegrityError(f"{path} is not a valid LoraConfig: {exc}") from None
    return config


def load_adapter(directory: Path, expected_sha256: str | None = None) -> LoadedAdapter:
    """Read and verify an adapter folder written by :func:`save_adapter` (or peft + metadata).

    ``expected_sha256`` is the hash a caller was told (the registry's row, a published serving
    set): the weights must hash to it as well as to the one in ``metadata.json``. The one place
    the project re-checks a sha256.

    Raises :class:`AdapterIntegrityError` for a missing file, a sha256 mismatch, an unreadable or
    non-safetensors weights file, or NaN/Inf weights.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise AdapterArtifactError(f"{directory} is not an adapter folder (no such directory)")
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        unsafe = [name for name in UNSAFE_WEIGHT_FILES if (directory / name).exists()]
        hint = f" (found {unsafe}: pickle-based weights are never loaded)" if unsafe else ""
        raise AdapterIntegrityError(f"{weights} is missing{hint}")
    metadata = _read_metadata(directory)
    actual = sha256_file(weights)
    if actual != metadata["sha256"]:
        raise AdapterIntegrityError(
            f"{weights} fails its integrity check: metadata.json records sha256 "
            f"{metadata['sha256']} but the file hashes to {actual}"
        )
    if expected_sha256 is not None and actual != expected_sha256:
        raise AdapterIntegrityError(
            f"{weights} is not the adapter expected: expected sha256 {expected_sha256}, "
            f"the file hashes to {actual}"
        )
    config = _read_config(directory)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterIntegrityError(
            f"{weights} is not a readable safetensors file: {exc}"
        ) from None
    bad = _non_finite_keys(state)
    if bad:
        raise AdapterIntegrityError(f"{weights} holds non-finite weights in {bad[:5]}")
    return LoadedAdapter(state=state, config=config, metadata=metadata)


def save_recommender_adapter(
    recommender: LoraRecommender, name: str, directory: Path, metadata: Mapping[str, object]
) -> Path:
    """Write the recommender's adapter ``name`` as an artifact folder (:func:`save_adapter`).

    ``base_model`` in the metadata defaults to the recommender's base model name.
    """
    meta = {"base_model": recommender.base.name, **dict(metadata)}
    return save_adapter(
        Path(directory), recommender.lora_state(name), recommender.adapter_config(name), meta
    )


def load_into_recommender(recommender: LoraRecommender, directory: Path, name: str) -> None:
    """Load a verified artifact folder into ``recommender`` as adapter ``name``.

    Refuses a folder trained on another base model, or a name already in use.
    """
    loaded = load_adapter(Path(directory))
    recorded = loaded.metadata.get("base_model")
    if recorded is not None and recorded != recommender.base.name:
        raise RecommenderError(
            f"{directory} was trained on base model {recorded!r}, not {recommender.base.name!r}"
        )
    if name in recommender.adapter_names:
        raise RecommenderError(f"adapter {name!r} already exists; delete_adapter it first")
    recommender.set_lora_state(name, loaded.state, loaded.config)
