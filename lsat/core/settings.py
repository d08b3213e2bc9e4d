"""The one settings object, built at the entry point and passed down.

This is the only module that reads environment variables (``LSAT_*``), through pydantic-settings
(:mod:`lsat.core.env_schema`). The sections below are the schema of the environment: each field
is one variable, ``ENV_PREFIX + FIELD`` unless ``Env(name=...)`` says otherwise (older names kept
as they were); :func:`variable_names` lists them all. Everything else takes a :class:`Settings`
(or one of its sections) as an argument. Sections are frozen pydantic dataclasses, so
``dataclasses.replace`` works and every value is validated. Tokens and passwords are
:class:`~pydantic.SecretStr`: never shown in ``repr``; :func:`reveal` gives the text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, SecretStr
from pydantic.dataclasses import dataclass

from lsat.core.env_schema import Env, SettingsError, render, variables
from lsat.core.env_schema import read as _read

__all__ = [
    "KafkaSettings",
    "ScorerSettings",
    "Settings",
    "SettingsError",
    "StreamSettings",
    "TopicNames",
    "TrainerSettings",
    "reveal",
    "to_env",
    "variable_names",
]

_CONFIG = ConfigDict(extra="forbid")
Port = Annotated[int, Field(ge=0, le=65535)]
Count = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]


def reveal(secret: SecretStr | None) -> str | None:
    """The text of a secret setting (``None`` when unset).

    >>> reveal(SecretStr("s3cret")), reveal(None)
    ('s3cret', None)
    """
    return None if secret is None else secret.get_secret_value()


@dataclass(frozen=True, config=_CONFIG)
class TopicNames:
    """Kafka topic names used by the system."""

    interactions: str = "interactions"
    items: str = "items"
    dlq: str = "interactions.dlq"
    retrain: str = "adapter.retrain"
    versions: str = "adapter.versions"


@dataclass(frozen=True, config=_CONFIG)
class KafkaSettings:
    """How to reach the broker; ``bootstrap_servers=None`` means "start the embedded tansu"."""

    ENV_PREFIX: ClassVar[str] = "LSAT_KAFKA_"
    bootstrap_servers: Annotated[str | None, Env("LSAT_KAFKA_BOOTSTRAP")] = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    embedded_port: Port = 19092
    partitions: Count = 1
    topics: TopicNames = field(default_factory=TopicNames)


@dataclass(frozen=True, config=_CONFIG)
class StreamSettings:
    """The stream worker: window policy, faust timings, local ports (bound to ``bind_host``),
    and the URL its peers dial (``worker_url``). Events over ``max_event_bytes`` are
    dead-lettered; a dead-letter record keeps at most ``dlq_payload_bytes`` of the payload and
    stays under ``dlq_record_bytes`` (keep it below the broker's message size limit). A failing
    store is retried after ``store_retry_first_s``, doubling up to ``store_retry_max_s``. With
    several partitions, one that committed nothing for ``partition_idle_timeout_s`` stops
    holding the global window open (:mod:`lsat.stream.alignment`)."""

    ENV_PREFIX: ClassVar[str] = "LSAT_STREAM_"
    window_max_samples: Annotated[Count, Env("LSAT_WINDOW_MAX_SAMPLES")] = 2000
    window_max_span_s: Annotated[Count | None, Env("LSAT_WINDOW_MAX_SPAN_S")] = None
    allowed_lateness_s: Annotated[int, Field(ge=0), Env("LSAT_WINDOW_ALLOWED_LATENESS_S")] = 0
    window_min_samples_on_drift: Annotated[
        Count | None, Env("LSAT_WINDOW_MIN_SAMPLES_ON_DRIFT")
    ] = None
    like_threshold: Annotated[float, Env("LSAT_LIKE_THRESHOLD")] = 3.0
    worker_web_port: Annotated[Port, Env("LSAT_WORKER_WEB_PORT")] = 6066
    metrics_port: Port = 9108
    session_timeout_s: Annotated[Seconds, Env("LSAT_KAFKA_SESSION_TIMEOUT_S")] = 6.0
    heartbeat_interval_s: Annotated[Seconds, Env("LSAT_KAFKA_HEARTBEAT_INTERVAL_S")] = 1.0
    app_id: str = "lsat-stream"
    drift_detection: Annotated[bool, Env("LSAT_DRIFT_DETECTION")] = True
    worker_url: Annotated[str | None, Env("LSAT_WORKER_URL")] = None
    max_event_bytes: Annotated[Count, Env("LSAT_MAX_EVENT_BYTES")] = 16_384
    dlq_payload_bytes: Annotated[Count, Env("LSAT_DLQ_PAYLOAD_BYTES")] = 16_384
    dlq_record_bytes: Annotated[Count, Env("LSAT_DLQ_RECORD_BYTES")] = 65_536
    store_retry_first_s: Annotated[Seconds, Env("LSAT_STORE_RETRY_FIRST_S")] = 0.5
    store_retry_max_s: Annotated[Seconds, Env("LSAT_STORE_RETRY_MAX_S")] = 30.0
    partition_idle_timeout_s: Annotated[Seconds, Env("LSAT_PARTITION_IDLE_TIMEOUT_S")] = 30.0
    batch_max_events: Annotated[Count, Env("LSAT_STREAM_BATCH_MAX_EVENTS")] = 2_000
    """Most interactions one worker handles in one DB transaction (larger: fewer statements per
    event, longer transactions holding the store's lock)."""

    @property
    def worker_base_url(self) -> str:
        """Where peers reach the worker's web endpoint: ``worker_url`` (e.g. ``http://worker:6066``
        in compose), else loopback on ``worker_web_port``; never the bind (listen) address.

        >>> StreamSettings(worker_web_port=7000).worker_base_url
        'http://127.0.0.1:7000'
        """
        return (self.worker_url or f"http://127.0.0.1:{self.worker_web_port}").rstrip("/")


@dataclass(frozen=True, config=_CONFIG)
class TrainerSettings:
    """The trainer (``lsat trainer``): promotion margin, long-adapter policy, training knobs.

    ``margin``: a new short adapter is promoted unless its combined validation AUC is worse than
    the serving combination's by more than this. ``long_refresh_every_windows`` (``None`` = never)
    and ``long_refresh_on_drift`` decide when the long adapter is retrained on recent windows.
    ``layers``: LoRA on the top N layers only (``None``, variable ``all`` = all layers).
    ``max_attempts`` and ``retry_backoff_*``: a failing job is retried with exponential backoff,
    then dead-lettered to ``adapter.retrain.dlq``.
    """

    ENV_PREFIX: ClassVar[str] = "LSAT_TRAINER_"
    margin: float = 0.01
    group_id: Annotated[str, Env("LSAT_TRAINER_GROUP")] = "lsat-trainer"
    epochs: Count = 1
    layers: Annotated[Count | None, Env(none="all")] = 4
    batch_size: Count = 8
    lr: Annotated[float, Field(gt=0)] = 1e-3
    max_samples_per_window: Annotated[Count, Env("LSAT_TRAINER_MAX_SAMPLES")] = 2000
    validation_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_train_seconds: Seconds | None = None
    bf16: bool = False
    merge: bool = True
    long_bootstrap_windows: Annotated[int, Field(ge=0), Env("LSAT_TRAINER_LONG_WINDOWS")] = 10
    long_refresh_every_windows: Annotated[
        Count | None, Env("LSAT_TRAINER_LONG_REFRESH_WINDOWS")
    ] = None
    long_refresh_on_drift: bool = False
    metrics_port: Port = 9109
    max_poll_interval_s: Seconds = 3600.0
    max_attempts: Count = 3
    retry_backoff_s: Annotated[float, Field(ge=0)] = 10.0
    retry_backoff_factor: Annotated[float, Field(ge=1)] = 2.0
    retry_backoff_max_s: Annotated[float, Field(ge=0)] = 300.0


@dataclass(frozen=True, config=_CONFIG)
class ScorerSettings:
    """The scorer (``lsat serve``): HTTP port of its API and ``/metrics``, and its server's
    limits (``lsat serve`` flags override them; see
    :class:`~lsat.adapters.serving.ServerLimits` for what each enforces).

    ``max_body_bytes``: largest request body (413 beyond). ``request_timeout_s``: time to send
    the headers, then the body (408), and the longest wait for a model slot (503).
    ``keep_alive_s``: idle kept-alive connection. ``max_concurrency`` scoring calls run at once,
    ``max_queue`` more wait (503 + ``Retry-After: retry_after_s`` beyond). ``max_candidates``:
    items per ``/score`` or ``/recommend`` (413 beyond). ``shutdown_timeout_s``: how long running
    requests may finish on stop. ``memory_trim_s``: at most this often, freed native memory goes
    back to the OS after a batch (0: never; see :mod:`lsat.adapters.serving.memory`).
    ``prefix_cache_mb``: memory for users' prompt prefixes (keys/values) kept between requests,
    so a user's next request runs only its candidates (0: off; see
    :mod:`lsat.adapters.model.prefix_cache`). ``bf16``: score in bf16 (``on``), fp32 (``off``),
    or bf16 where the hardware computes it natively (``auto``, the default).
    """

    ENV_PREFIX: ClassVar[str] = "LSAT_SCORER_"
    port: Port = 8080
    max_body_bytes: Count = 1 << 20
    request_timeout_s: Seconds = 30.0
    keep_alive_s: Seconds = 5.0
    max_concurrency: Count = 8
    max_queue: Annotated[int, Field(ge=0)] = 32
    max_candidates: Count = 1000
    retry_after_s: Seconds = 1.0
    shutdown_timeout_s: Seconds = 10.0
    memory_trim_s: Annotated[float, Field(ge=0)] = 1.0
    prefix_cache_mb: Annotated[int, Field(ge=0)] = 256
    bf16: Annotated[bool | None, Env(none="auto")] = None


@dataclass(frozen=True, config=_CONFIG)
class Settings:
    """Top-level configuration; ``home`` holds caches, artifacts and the default SQLite file.

    ``admin_token`` guards admin actions on the servers; ``client_token`` is the token this
    client presents to them. ``artifact_store`` is where the trainer puts adapter folders:
    ``file`` (its own disk) or ``db`` (the registry database, for scorers on other hosts).
    """

    ENV_PREFIX: ClassVar[str] = "LSAT_"
    home: Path = Path(".lsat")
    database_url: str | None = None
    base_model: str = "smollm2"
    admin_token: SecretStr | None = None
    client_token: SecretStr | None = None
    bind_host: str = "127.0.0.1"
    artifact_store: Literal["file", "db"] = "file"
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

    @property
    def dial_host(self) -> str:
        """The host a client on this machine dials to reach a server bound to ``bind_host``:
        loopback when that is a wildcard listen address.

        >>> Settings(bind_host="0.0.0.0").dial_host, Settings(bind_host="10.0.0.5").dial_host
        ('127.0.0.1', '10.0.0.5')
        """
        return "127.0.0.1" if self.bind_host in ("", "0.0.0.0", "::") else self.bind_host

    @property
    def presented_token(self) -> str | None:
        """The token this process presents to admin actions: ``client_token``, else
        ``admin_token`` (an operator whose environment holds the admin token).

        >>> Settings(admin_token="a").presented_token, Settings(client_token="c").presented_token
        ('a', 'c')
        """
        return reveal(self.client_token) or reveal(self.admin_token)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some top-level fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``LSAT_*`` variables, falling back to the defaults.

        >>> s = Settings.from_env({"LSAT_HOME": "/tmp/x", "LSAT_KAFKA_BOOTSTRAP": "k:9092"})
        >>> str(s.home), s.kafka.bootstrap_servers, s.db_url
        ('/tmp/x', 'k:9092', 'sqlite:////tmp/x/lsat.sqlite')
        >>> s = Settings.from_env({"LSAT_TRAINER_BF16": "on", "LSAT_DRIFT_DETECTION": "off"})
        >>> s.trainer.bf16, s.stream.drift_detection
        (True, False)
        >>> Settings.from_env({"LSAT_TRAINER_EPOCHS": "two"})
        Traceback (most recent call last):
        ...
        lsat.core.env_schema.SettingsError: bad environment variable(s): \
LSAT_TRAINER_EPOCHS='two': Input should be a valid integer, unable to parse string as an integer
        """
        return _read(cls, os.environ if environ is None else environ)


def to_env(settings: Settings) -> dict[str, str]:
    """Every ``LSAT_*`` variable of ``settings``, as text: a child process started with them
    builds the same settings (an unset optional value is ``""``).

    >>> env = to_env(Settings(admin_token="s3cret"))
    >>> env["LSAT_ADMIN_TOKEN"], env["LSAT_TRAINER_LAYERS"], env["LSAT_DATABASE_URL"]
    ('s3cret', '4', '')
    >>> Settings.from_env(env) == Settings(admin_token="s3cret")
    True
    """
    return render(settings)


def variable_names() -> tuple[str, ...]:
    """The name of every environment variable the settings read."""
    return tuple(v.name for v in variables(Settings))
