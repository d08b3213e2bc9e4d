"""Adapter folders for the artifact store tests: small LoRA states saved with ``save_adapter``
(a plain module on ``sys.path``, like ``needs``: ``from artifact_cases import saved_adapter``)."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig
from sqlalchemy import Engine, select, update

from lsat.adapters.lifecycle.artifacts import WEIGHTS_FILE, save_adapter, sha256_file
from lsat.adapters.lifecycle.registry.models import AdapterArtifactRow

__all__ = ["flip_stored_byte", "saved_adapter", "stored_digests"]


def saved_adapter(folder: Path, seed: int, kind: str = "short") -> tuple[Path, str]:
    """Save a random rank-2 LoRA (q_proj of 2 layers) at ``folder``; (folder, weights sha256)."""
    generator = torch.Generator().manual_seed(seed)
    state = {
        f"base_model.model.model.layers.{layer}.self_attn.q_proj.lora_{part}.weight": torch.randn(
            shape, generator=generator
        )
        for layer in range(2)
        for part, shape in (("A", (2, 16)), ("B", (16, 2)))
    }
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])
    metadata = {"base_model": "tiny-llama", "kind": kind, "window": seed}
    path = save_adapter(folder, state, config, metadata)
    return path, sha256_file(path / WEIGHTS_FILE)


def stored_digests(engine: Engine) -> list[str]:
    """The digests of every archive in the ``adapter_artifacts`` table."""
    with engine.connect() as connection:
        return list(connection.execute(select(AdapterArtifactRow.digest)).scalars())


def flip_stored_byte(engine: Engine, digest: str, offset: int = -100) -> None:
    """Corrupt one byte of a stored archive in place (what a bad disk or a bad hand does)."""
    with engine.begin() as connection:
        content = bytearray(
            connection.execute(
                select(AdapterArtifactRow.content).where(AdapterArtifactRow.digest == digest)
            ).scalar_one()
        )
        content[offset] ^= 0xFF
        connection.execute(
            update(AdapterArtifactRow)
            .where(AdapterArtifactRow.digest == digest)
            .values(content=bytes(content))
        )
