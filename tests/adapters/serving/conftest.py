"""Serving fixtures: a real tansu broker, a SQLite registry, adapters saved on disk."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import astuple, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from needs import missing
from peft import LoraConfig, get_peft_model
from peft.utils import get_peft_model_state_dict

from lsat.adapters.lifecycle.artifacts import save_adapter
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore, open_registry
from lsat.adapters.model.base_model import tiny_llama
from lsat.core.settings import KafkaSettings, Settings, TopicNames

if TYPE_CHECKING:
    from lsat.adapters.serving import Scorer


@pytest.fixture(scope="session")
def serving_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running embedded tansu broker for the serving tests."""
    from lsat.stream.broker import BrokerError, EmbeddedBroker, find_tansu, free_port

    try:
        find_tansu()
    except BrokerError as exc:
        missing(f"no tansu broker binary: {exc}")
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


@pytest.fixture(scope="session")
def random_adapter() -> Callable[[int], tuple[dict[str, torch.Tensor], LoraConfig]]:
    """:func:`random_adapter_state` for tests (importing from ``conftest`` is ambiguous)."""
    return random_adapter_state


def save_and_register(
    registry: RegistryStore, folder: Path, kind: str, seed: int, alpha: float | None = None
) -> AdapterVersion:
    """Save a random adapter under ``folder`` and register it (``alpha`` as its metric)."""
    from lsat.adapters.lifecycle.artifacts import sha256_file

    state, config = random_adapter_state(seed)
    saved = save_adapter(
        folder / f"{kind}-{seed}-{uuid.uuid4().hex[:6]}",
        state,
        config,
        {"base_model": "tiny-llama", "kind": kind},
    )
    sha = sha256_file(saved / "adapter_model.safetensors")
    metrics = {} if alpha is None else {"alpha": alpha}
    return registry.register(kind, path=saved, sha256=sha, metrics=metrics, trigger="test")


@pytest.fixture
def register_adapter(registry: RegistryStore, tmp_path: Path) -> Callable[..., AdapterVersion]:
    """``register_adapter(kind, seed, alpha=None)`` saves a random adapter and registers it."""

    def make(kind: str, seed: int, *, alpha: float | None = None) -> AdapterVersion:
        return save_and_register(registry, tmp_path / "artifacts", kind, seed, alpha)

    return make


def start_scorer(
    registry: RegistryStore, folder: Path, settings: Settings | None = None, **kwargs: object
) -> Scorer:
    """A started scorer without a broker (``consume=False``) serving long v1 + short v1
    (α 0.7) on the tiny Llama, on a free port (``settings`` default: an admin token only)."""
    from lsat.adapters.model.recommender import LoraRecommender
    from lsat.adapters.serving import Scorer

    if registry.resolve("serving-long") is None:
        long1 = save_and_register(registry, folder, "long", 1)
        short1 = save_and_register(registry, folder, "short", 2, alpha=0.7)
        registry.set_alias("serving-long", "long", long1.version, reason="test", actor="test")
        registry.set_alias("serving-short", "short", short1.version, reason="test", actor="test")
    titles = {str(i): f"Film {i}" for i in range(40)}
    recommender = LoraRecommender(
        tiny_llama(0, hidden_size=128, num_layers=4), titles, progress=False
    )
    settings = settings or Settings(admin_token="s3cret-token")
    scorer = Scorer(recommender, registry, settings, port=0, consume=False, **kwargs)
    return scorer.start()


@pytest.fixture(scope="session")
def scorer_starter() -> Callable[..., Scorer]:
    """:func:`start_scorer`, for fixtures of any scope."""
    return start_scorer


@pytest.fixture
def make_scorer(registry: RegistryStore, tmp_path: Path) -> Iterator[Callable[..., Scorer]]:
    """``make_scorer(**scorer_kwargs)``: :func:`start_scorer` on this test's registry; stopped
    at the end."""
    started: list[Scorer] = []

    def make(**kwargs: object) -> Scorer:
        started.append(start_scorer(registry, tmp_path / "artifacts", **kwargs))
        return started[-1]

    yield make
    for scorer in started:
        scorer.stop()
