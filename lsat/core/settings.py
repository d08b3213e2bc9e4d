"""The one settings object, built at the entry point and passed down.

This is the only module that reads environment variables (``LSAT_*``). Everything else takes a
:class:`Settings` (or one of its sections) as an argument.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "KafkaSettings",
    "ScorerSettings",
    "Settings",
    "StreamSettings",
    "TopicNames",
    "TrainerSettings",
]


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Kafka topic names used by the system."""

    interactions: str = "interactions"
    items: str = "items"
    dlq: str = "interactions.dlq"
    retrain: str = "adapter.retrain"
    versions: str = "adapter.versions"


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach the broker; ``bootstrap_servers=None`` means "start the embedded tansu"."""

    bootstrap_servers: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    embedded_port: int = 19092
    partitions: int = 1
    topics: TopicNames = field(default_factory=TopicNames)


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """The stream worker: window policy, faust timings, local ports (bound to ``bind_host``)."""

    window_max_samples: int = 2000
    window_max_span_s: int | None = None
    allowed_lateness_s: int = 0
    like_threshold: float = 3.0
    worker_web_port: int = 6066
    metrics_port: int = 9108
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0
    app_id: str = "lsat-stream"
    drift_detection: bool = True


@dataclass(frozen=True, slots=True)
class TrainerSettings:
    """The trainer (``lsat trainer``): promotion margin, long-adapter policy, training knobs.

    ``margin``: a new short adapter is promoted unless its combined validation AUC is worse than
    the serving combination's by more than this. ``long_refresh_every_windows`` (``None`` = never)
    and ``long_refresh_on_drift`` decide when the long adapter is retrained on recent windows.
    ``layers``: LoRA on the top N layers only (``None`` = all).
    """

    margin: float = 0.01
    group_id: str = "lsat-trainer"
    epochs: int = 1
    layers: int | None = 4
    batch_size: int = 8
    lr: float = 1e-3
    max_samples_per_window: int = 2000
    validation_fraction: float = 0.1
    max_train_seconds: float | None = None
    bf16: bool = False
    merge: bool = True
    long_bootstrap_windows: int = 10
    long_refresh_every_windows: int | None = None
    long_refresh_on_drift: bool = False
    metrics_port: int = 9109
    max_poll_interval_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class ScorerSettings:
    """The scorer (``lsat serve``): HTTP port of its API and ``/metrics``."""

    port: int = 8080


@dataclass(frozen=True, slots=True)
class Settings:
    """Top-level configuration; ``home`` holds caches, artifacts and the default SQLite file."""

    home: Path = Path(".lsat")
    database_url: str | None = None
    base_model: str = "smollm2"
    admin_token: str | None = None
    client_token: str | None = None  # the token this client presents to admin actions
    bind_host: str = "127.0.0.1"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    scorer: ScorerSettings = field(default_factory=ScorerSettings)

    @property
    def cache_dir(self) -> Path:
        """Converted base models and downloaded datasets."""
        return self.home / "cache"

    @property
    def artifact_dir(self) -> Path:
        """Adapter folders (peft layout + metadata.json)."""
        return self.home / "artifacts"

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL: the configured one, or a SQLite file under ``home``."""
        return self.database_url or f"sqlite:///{(self.home / 'lsat.sqlite').resolve()}"

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some top-level fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``LSAT_*`` variables, falling back to the defaults.

        >>> s = Settings.from_env({"LSAT_HOME": "/tmp/x", "LSAT_KAFKA_BOOTSTRAP": "k:9092"})
        >>> str(s.home), s.kafka.bootstrap_servers, s.db_url
        ('/tmp/x', 'k:9092', 'sqlite:////tmp/x/lsat.sqlite')
        """
        env = os.environ if environ is None else environ
        kafka = KafkaSettings(
            bootstrap_servers=env.get("LSAT_KAFKA_BOOTSTRAP") or None,
            security_protocol=env.get("LSAT_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            sasl_mechanism=env.get("LSAT_KAFKA_SASL_MECHANISM") or None,
            sasl_username=env.get("LSAT_KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("LSAT_KAFKA_SASL_PASSWORD") or None,
            ssl_cafile=env.get("LSAT_KAFKA_SSL_CAFILE") or None,
            embedded_port=int(env.get("LSAT_KAFKA_EMBEDDED_PORT", "19092")),
            partitions=int(env.get("LSAT_KAFKA_PARTITIONS", "1")),
        )
        span = env.get("LSAT_WINDOW_MAX_SPAN_S")
        stream = StreamSettings(
            window_max_samples=int(env.get("LSAT_WINDOW_MAX_SAMPLES", "2000")),
            window_max_span_s=int(span) if span else None,
            allowed_lateness_s=int(env.get("LSAT_WINDOW_ALLOWED_LATENESS_S", "0")),
            like_threshold=float(env.get("LSAT_LIKE_THRESHOLD", "3.0")),
            worker_web_port=int(env.get("LSAT_WORKER_WEB_PORT", "6066")),
            metrics_port=int(env.get("LSAT_STREAM_METRICS_PORT", "9108")),
            session_timeout_s=float(env.get("LSAT_KAFKA_SESSION_TIMEOUT_S", "6")),
            heartbeat_interval_s=float(env.get("LSAT_KAFKA_HEARTBEAT_INTERVAL_S", "1")),
            app_id=env.get("LSAT_STREAM_APP_ID", "lsat-stream"),
            drift_detection=env.get("LSAT_DRIFT_DETECTION", "1").lower()
            not in ("0", "false", "no"),
        )
        layers = env.get("LSAT_TRAINER_LAYERS", "4")
        refresh = env.get("LSAT_TRAINER_LONG_REFRESH_WINDOWS")
        trainer = TrainerSettings(
            margin=float(env.get("LSAT_TRAINER_MARGIN", "0.01")),
            group_id=env.get("LSAT_TRAINER_GROUP", "lsat-trainer"),
            epochs=int(env.get("LSAT_TRAINER_EPOCHS", "1")),
            layers=int(layers) if layers and layers.lower() != "all" else None,
            max_samples_per_window=int(env.get("LSAT_TRAINER_MAX_SAMPLES", "2000")),
            bf16=env.get("LSAT_TRAINER_BF16", "0").lower() in ("1", "true", "yes"),
            long_bootstrap_windows=int(env.get("LSAT_TRAINER_LONG_WINDOWS", "10")),
            long_refresh_every_windows=int(refresh) if refresh else None,
            long_refresh_on_drift=env.get("LSAT_TRAINER_LONG_REFRESH_ON_DRIFT", "0").lower()
            in ("1", "true", "yes"),
            metrics_port=int(env.get("LSAT_TRAINER_METRICS_PORT", "9109")),
        )
        return cls(
            home=Path(env.get("LSAT_HOME", ".lsat")),
            database_url=env.get("LSAT_DATABASE_URL") or None,
            base_model=env.get("LSAT_BASE_MODEL", "smollm2"),
            admin_token=env.get("LSAT_ADMIN_TOKEN") or None,
            client_token=env.get("LSAT_CLIENT_TOKEN") or None,
            bind_host=env.get("LSAT_BIND_HOST", "127.0.0.1"),
            kafka=kafka,
            stream=stream,
            trainer=trainer,
            scorer=ScorerSettings(port=int(env.get("LSAT_SCORER_PORT", "8080"))),
        )
