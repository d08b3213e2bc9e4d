"""Adapter folders: atomic peft-compatible save, verified load, interoperability with peft."""

from __future__ import annotations

import json
import math
from pathlib import Path

import peft
import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

import lsat.adapters.lifecycle.artifacts as artifacts
from lsat.adapters.lifecycle.artifacts import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    load_adapter,
    save_adapter,
    sha256_file,
    write_metadata,
)
from lsat.adapters.model.errors import (
    AdapterArtifactError,
    AdapterError,
    AdapterExistsError,
    AdapterIntegrityError,
)
from lsat.adapters.model.merging import delta_weights, merge_delta

METADATA = {
    "base_model": "tiny-random-llama",
    "kind": "short",
    "window": {"id": 7, "start": 881250949, "end": 881300000},
    "metrics": {"val_auc": 0.71, "val_logloss": 0.62},
}


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """A random 2-layer Llama (hidden 64, vocab 128): the same weights for the same seed."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=128,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


def lora_config(r: int = 4, alpha: int = 8) -> LoraConfig:
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])


def trained_like_peft_model(seed: int = 0, lora_seed: int = 1) -> PeftModel:
    """A peft model whose LoRA B matrices are random (as after training), not zero."""
    model = get_peft_model(tiny_llama(seed), lora_config())
    generator = torch.Generator().manual_seed(lora_seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    input_ids = torch.arange(3, 19).reshape(2, 8)
    with torch.no_grad():
        return model(input_ids=input_ids).logits


def peft_adapter(lora_seed: int = 1) -> tuple[dict[str, torch.Tensor], LoraConfig, PeftModel]:
    model = trained_like_peft_model(lora_seed=lora_seed)
    state = get_peft_model_state_dict(model, adapter_name="default")
    return state, model.peft_config["default"], model


# --- round trips ------------------------------------------------------------------------------


def test_save_then_load_round_trips_state_config_and_metadata(tmp_path: Path):
    state, config, _ = peft_adapter()
    target = tmp_path / "adapters" / "short-0007"
    assert save_adapter(target, state, config, METADATA) == target
    assert sorted(path.name for path in target.iterdir()) == sorted(
        [WEIGHTS_FILE, CONFIG_FILE, METADATA_FILE]
    )
    assert [p.name for p in target.parent.iterdir()] == ["short-0007"]  # no staging leftovers

    loaded = load_adapter(target)
    assert loaded.state.keys() == state.keys()
    for key, tensor in state.items():
        torch.testing.assert_close(loaded.state[key], tensor)
    assert (loaded.config.r, loaded.config.lora_alpha) == (config.r, config.lora_alpha)
    assert set(loaded.config.target_modules) == {"q_proj", "v_proj"}
    assert loaded.metadata["sha256"] == sha256_file(target / WEIGHTS_FILE)
    for key, value in METADATA.items():
        assert loaded.metadata[key] == value
    assert set(loaded.metadata["library_versions"]) >= {"torch", "peft", "safetensors"}
    assert loaded.metadata["library_versions"]["peft"] == peft.__version__
    assert loaded.metadata["created_at"].endswith("+00:00")


def test_folder_we_save_loads_with_plain_peft(tmp_path: Path):
    state, config, source_model = peft_adapter()
    save_adapter(tmp_path / "a", state, config, METADATA)
    reloaded = PeftModel.from_pretrained(tiny_llama(), tmp_path / "a").eval()
    torch.testing.assert_close(logits(reloaded), logits(source_model))
    assert not torch.allclose(logits(reloaded), logits(tiny_llama()))  # the adapter does act


def test_folder_peft_saves_loads_with_ours(tmp_path: Path):
    state, _, model = peft_adapter()
    model.save_pretrained(tmp_path / "peft")
    written = write_metadata(tmp_path / "peft", {"base_model": "tiny", "kind": "long"})
    assert written["sha256"] == sha256_file(tmp_path / "peft" / WEIGHTS_FILE)
    loaded = load_adapter(tmp_path / "peft")
    assert loaded.state.keys() == state.keys()
    for key, tensor in state.items():
        torch.testing.assert_close(loaded.state[key], tensor)
    assert loaded.metadata["kind"] == "long"


def test_merged_adapter_saved_by_us_acts_as_the_weighted_sum_in_peft(tmp_path: Path):
    first, config, _ = peft_adapter(lora_seed=1)
    second, _, _ = peft_adapter(lora_seed=2)
    weights = [0.3, 0.7]
    merged_state, merged_config = merge_delta([(first, config), (second, config)], weights)
    save_adapter(tmp_path / "merged", merged_state, merged_config, {**METADATA, "kind": "merged"})
    via_peft = PeftModel.from_pretrained(tiny_llama(), tmp_path / "merged").eval()

    # The same update applied by hand to the base weights.
    manual = tiny_llama()
    deltas = [delta_weights(first, config), delta_weights(second, config)]
    with torch.no_grad():
        for module in deltas[0]:
            path = module.removeprefix("base_model.model.")
            manual.get_submodule(path).weight += sum(
                w * d[module] for w, d in zip(weights, deltas, strict=True)
            )
    torch.testing.assert_close(logits(via_peft), logits(manual), rtol=1e-4, atol=1e-5)


# --- refusals on save -------------------------------------------------------------------------


@pytest.mark.parametrize("bad_value", [math.nan, math.inf, -math.inf])
def test_save_refuses_non_finite_weights_and_writes_nothing(tmp_path: Path, bad_value: float):
    state, config, _ = peft_adapter()
    key = next(iter(state))
    state[key] = state[key].clone()
    state[key][0, 0] = bad_value
    with pytest.raises(AdapterIntegrityError, match="non-finite weights in"):
        save_adapter(tmp_path / "bad", state, config, METADATA)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"kind": "short"}, r"lacks required keys \['base_model'\]"),
        ({"base_model": "m"}, r"lacks required keys \['kind'\]"),
        ({"base_model": "m", "kind": "medium"}, "kind must be one of .* got 'medium'"),
        ({"base_model": "m", "kind": "short", "metrics": {1, 2}}, "not JSON-serialisable"),
    ],
)
def test_save_refuses_bad_metadata_and_leaves_no_folder(tmp_path: Path, metadata, message):
    state, config, _ = peft_adapter()
    with pytest.raises(AdapterArtifactError, match=message):
        save_adapter(tmp_path / "bad", state, config, metadata)
    assert list(tmp_path.iterdir()) == []


def test_save_never_overwrites(tmp_path: Path):
    state, config, _ = peft_adapter()
    save_adapter(tmp_path / "a", state, config, METADATA)
    before = sha256_file(tmp_path / "a" / WEIGHTS_FILE)
    other, _, _ = peft_adapter(lora_seed=5)
    with pytest.raises(AdapterExistsError, match="already exists"):
        save_adapter(tmp_path / "a", other, config, METADATA)
    assert sha256_file(tmp_path / "a" / WEIGHTS_FILE) == before


def test_crash_while_writing_leaves_no_visible_adapter(tmp_path: Path, monkeypatch):
    state, config, _ = peft_adapter()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(artifacts, "write_metadata", crash)
    with pytest.raises(OSError, match="disk full"):
        save_adapter(tmp_path / "a", state, config, METADATA)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a staging folder


# --- refusals on load -------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    state, config, _ = peft_adapter()
    return save_adapter(tmp_path / "saved", state, config, METADATA)


def test_load_refuses_hash_mismatch_naming_file_and_both_hashes(saved: Path):
    recorded = json.loads((saved / METADATA_FILE).read_text())["sha256"]
    state = load_adapter(saved).state
    key = next(iter(state))
    state[key][0, 0] += 1.0
    save_file(state, str(saved / WEIGHTS_FILE), metadata={"format": "pt"})
    actual = sha256_file(saved / WEIGHTS_FILE)
    with pytest.raises(AdapterIntegrityError) as caught:
        load_adapter(saved)
    message = str(caught.value)
    assert str(saved / WEIGHTS_FILE) in message
    assert recorded in message and actual in message


def test_load_checks_the_hash_the_caller_expects(saved: Path):
    recorded = json.loads((saved / METADATA_FILE).read_text())["sha256"]
    assert load_adapter(saved, expected_sha256=recorded).metadata["sha256"] == recorded
    other = "0" * 64
    with pytest.raises(AdapterIntegrityError) as caught:  # folder intact, but not the one meant
        load_adapter(saved, expected_sha256=other)
    assert other in str(caught.value) and recorded in str(caught.value)


def test_load_refuses_truncated_file(saved: Path):
    weights = saved / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(AdapterIntegrityError, match="fails its integrity check"):
        load_adapter(saved)
    # Even with a matching hash the truncated file is refused as unreadable.
    metadata = json.loads((saved / METADATA_FILE).read_text())
    write_metadata(saved, metadata)
    with pytest.raises(AdapterIntegrityError, match="not a readable safetensors file"):
        load_adapter(saved)


def test_load_refuses_nan_even_with_matching_hash(saved: Path):
    state = load_adapter(saved).state
    key = sorted(state)[-1]
    state[key][0, 0] = math.nan
    save_file(state, str(saved / WEIGHTS_FILE), metadata={"format": "pt"})
    write_metadata(saved, json.loads((saved / METADATA_FILE).read_text()))
    with pytest.raises(AdapterIntegrityError, match=f"non-finite weights in .*{key}"):
        load_adapter(saved)


@pytest.mark.parametrize(
    ("file_name", "message"),
    [
        (METADATA_FILE, "metadata.json is missing"),
        (CONFIG_FILE, "adapter_config.json is missing"),
        (WEIGHTS_FILE, "adapter_model.safetensors is missing"),
    ],
)
def test_load_refuses_missing_files(saved: Path, file_name: str, message: str):
    (saved / file_name).unlink()
    with pytest.raises(AdapterIntegrityError, match=message):
        load_adapter(saved)


def test_load_never_reads_pickle_weights(saved: Path):
    state = load_adapter(saved).state
    (saved / WEIGHTS_FILE).unlink()
    torch.save(state, saved / "adapter_model.bin")
    with pytest.raises(AdapterIntegrityError, match=r"pickle-based weights are never loaded"):
        load_adapter(saved)


def test_load_refuses_pickle_renamed_as_safetensors(saved: Path):
    state = load_adapter(saved).state
    torch.save(state, saved / WEIGHTS_FILE)
    write_metadata(saved, json.loads((saved / METADATA_FILE).read_text()))
    with pytest.raises(AdapterIntegrityError, match="not a readable safetensors file"):
        load_adapter(saved)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "metadata.json is not valid JSON"),
        ('{"kind": "short"}', "has no 'sha256'"),
        ("[1, 2]", "has no 'sha256'"),
    ],
)
def test_load_refuses_bad_metadata_file(saved: Path, content: str, message: str):
    (saved / METADATA_FILE).write_text(content)
    with pytest.raises(AdapterIntegrityError, match=message):
        load_adapter(saved)


def test_load_refuses_non_lora_config(saved: Path):
    config = json.loads((saved / CONFIG_FILE).read_text())
    config["peft_type"] = "IA3"
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(AdapterIntegrityError, match=r"not a LoRA config .*'IA3'"):
        load_adapter(saved)


def test_load_refuses_missing_directory(tmp_path: Path):
    with pytest.raises(AdapterArtifactError, match="no such directory"):
        load_adapter(tmp_path / "nowhere")


def test_errors_share_the_adapter_root():
    for error in (AdapterArtifactError, AdapterExistsError, AdapterIntegrityError):
        assert issubclass(error, AdapterError)
    assert issubclass(AdapterExistsError, FileExistsError)
