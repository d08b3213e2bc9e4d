"""Serving fixtures: a real tansu broker, a SQLite registry, adapters saved on disk."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import astuple, replace
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.utils import get_peft_model_state_dict

from lsat.adapters.lifecycle.artifacts import save_adapter
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore, open_registry
from lsat.adapters.model.base_model import tiny_llama
from lsat.core.settings import KafkaSettings, TopicNames


@pytest.fixture(scope="session")
def serving_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running embedded tansu broker for the serving tests."""
    from lsat.stream.broker import BrokerError, EmbeddedBroker, find_tansu, free_port

    try:
        find_tansu()
    except BrokerError as exc:
        pytest.skip(f"no tansu broker binary: {exc}")
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedBroker(KafkaSettings(partitions=1), port=free_port(), log_path=log_path) as b:
        yield b


@pytest.fixture
def serving_kafka(serving_broker: object) -> KafkaSettings:
    """Kafka settings with topic names unique to this test, created on the broker."""
    from lsat.stream.topics import ensure_topics

    tag = uuid.uuid4().hex[:8]
    topics = TopicNames(*(f"{name}.{tag}" for name in astuple(TopicNames())))
    settings = replace(serving_broker.kafka_settings, topics=topics)  # type: ignore[attr-defined]
    ensure_topics(settings)
    return settings


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryStore]:
    """A fresh SQLite registry file."""
    with open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}") as store:
        yield store


def random_adapter_state(seed: int) -> tuple[dict[str, torch.Tensor], LoraConfig]:
    """A random (non-zero) LoRA for the tiny Llama used by ``tiny_base``."""
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    torch.manual_seed(seed)
    model = get_peft_model(tiny_llama(0, hidden_size=128, num_layers=4).model, config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.mul_(3.0)
    state = get_peft_model_state_dict(model)
    return {k: v.detach().clone() for k, v in state.items()}, config


@pytest.fixture
def register_adapter(registry: RegistryStore, tmp_path: Path) -> Callable[..., AdapterVersion]:
    """``register_adapter(kind, seed, nan=False)`` saves a random adapter and registers it."""

    def make(kind: str, seed: int, *, alpha: float | None = None) -> AdapterVersion:
        state, config = random_adapter_state(seed)
        folder = save_adapter(
            tmp_path / "artifacts" / f"{kind}-{seed}-{uuid.uuid4().hex[:6]}",
            state,
            config,
            {"base_model": "tiny-llama", "kind": kind},
        )
        from lsat.adapters.lifecycle.artifacts import sha256_file

        sha = sha256_file(folder / "adapter_model.safetensors")
        metrics = {} if alpha is None else {"alpha": alpha}
        return registry.register(kind, path=folder, sha256=sha, metrics=metrics, trigger="test")

    return make
