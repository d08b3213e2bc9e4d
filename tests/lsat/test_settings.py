"""lsat/core/settings.py: the environment schema (pydantic-settings), parsing and rendering."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pydantic
import pytest

from lsat.core.settings import Settings, SettingsError, to_env, variable_names

# Every variable name in use before the move to pydantic-settings, and where its value lands.
LEGACY = [
    ("LSAT_HOME", "/srv/lsat", ("home",), "/srv/lsat"),
    ("LSAT_DATABASE_URL", "postgresql+psycopg://h/db", ("database_url",), None),
    ("LSAT_BASE_MODEL", "tiny-llama", ("base_model",), None),
    ("LSAT_BIND_HOST", "0.0.0.0", ("bind_host",), None),
    ("LSAT_KAFKA_BOOTSTRAP", "k:9092", ("kafka", "bootstrap_servers"), None),
    ("LSAT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL", ("kafka", "security_protocol"), None),
    ("LSAT_KAFKA_SASL_MECHANISM", "PLAIN", ("kafka", "sasl_mechanism"), None),
    ("LSAT_KAFKA_SASL_USERNAME", "u", ("kafka", "sasl_username"), None),
    ("LSAT_KAFKA_SSL_CAFILE", "/ca.pem", ("kafka", "ssl_cafile"), None),
    ("LSAT_KAFKA_EMBEDDED_PORT", "29092", ("kafka", "embedded_port"), 29092),
    ("LSAT_KAFKA_PARTITIONS", "3", ("kafka", "partitions"), 3),
    ("LSAT_WINDOW_MAX_SAMPLES", "50", ("stream", "window_max_samples"), 50),
    ("LSAT_WINDOW_MAX_SPAN_S", "3600", ("stream", "window_max_span_s"), 3600),
    ("LSAT_WINDOW_ALLOWED_LATENESS_S", "5", ("stream", "allowed_lateness_s"), 5),
    ("LSAT_LIKE_THRESHOLD", "3.5", ("stream", "like_threshold"), 3.5),
    ("LSAT_WORKER_WEB_PORT", "7000", ("stream", "worker_web_port"), 7000),
    ("LSAT_STREAM_METRICS_PORT", "7001", ("stream", "metrics_port"), 7001),
    ("LSAT_KAFKA_SESSION_TIMEOUT_S", "2", ("stream", "session_timeout_s"), 2.0),
    ("LSAT_KAFKA_HEARTBEAT_INTERVAL_S", "0.5", ("stream", "heartbeat_interval_s"), 0.5),
    ("LSAT_STREAM_APP_ID", "app-x", ("stream", "app_id"), None),
    ("LSAT_DRIFT_DETECTION", "0", ("stream", "drift_detection"), False),
    ("LSAT_STREAM_BATCH_MAX_EVENTS", "300", ("stream", "batch_max_events"), 300),
    ("LSAT_TRAINER_MARGIN", "0.05", ("trainer", "margin"), 0.05),
    ("LSAT_TRAINER_GROUP", "g", ("trainer", "group_id"), None),
    ("LSAT_TRAINER_EPOCHS", "3", ("trainer", "epochs"), 3),
    ("LSAT_TRAINER_LAYERS", "all", ("trainer", "layers"), "unset"),
    ("LSAT_TRAINER_MAX_SAMPLES", "40", ("trainer", "max_samples_per_window"), 40),
    ("LSAT_TRAINER_BF16", "1", ("trainer", "bf16"), True),
    ("LSAT_TRAINER_LONG_WINDOWS", "2", ("trainer", "long_bootstrap_windows"), 2),
    ("LSAT_TRAINER_LONG_REFRESH_WINDOWS", "5", ("trainer", "long_refresh_every_windows"), 5),
    ("LSAT_TRAINER_LONG_REFRESH_ON_DRIFT", "yes", ("trainer", "long_refresh_on_drift"), True),
    ("LSAT_TRAINER_METRICS_PORT", "7002", ("trainer", "metrics_port"), 7002),
    ("LSAT_SCORER_PORT", "9000", ("scorer", "port"), 9000),
]


def _get(settings: Settings, path: tuple[str, ...]) -> object:
    return functools.reduce(getattr, path, settings)


@pytest.mark.parametrize(("name", "text", "path", "expected"), LEGACY)
def test_every_existing_variable_name_still_sets_its_field(
    name: str, text: str, path: tuple[str, ...], expected: object
) -> None:
    value = _get(Settings.from_env({name: text}), path)
    want = None if expected == "unset" else text if expected is None else expected
    assert (str(value) if name == "LSAT_HOME" else value) == want
    assert value != _get(Settings(), path)


@pytest.mark.parametrize("name", ["LSAT_ADMIN_TOKEN", "LSAT_CLIENT_TOKEN"])
def test_tokens_are_secret_and_never_in_repr(name: str) -> None:
    settings = Settings.from_env({name: "s3cret-value", "LSAT_KAFKA_SASL_PASSWORD": "pw-value"})
    field = name.removeprefix("LSAT_").lower()
    assert getattr(settings, field).get_secret_value() == "s3cret-value"
    assert settings.kafka.sasl_password.get_secret_value() == "pw-value"
    assert "s3cret-value" not in repr(settings)
    assert "pw-value" not in repr(settings) and "pw-value" not in str(settings)


BOOLEANS = sorted(n for n, v in to_env(Settings()).items() if v in ("true", "false"))


TRUE_WORDS = ("1", "true", "on", "yes", "TRUE", "On", "Yes")
FALSE_WORDS = ("0", "false", "off", "no", "False", "OFF")


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize("text", TRUE_WORDS + FALSE_WORDS)
def test_every_boolean_parses_the_same_words(name: str, text: str) -> None:
    settings = Settings.from_env({name: text})
    rendered = to_env(settings)[name]
    assert rendered == ("true" if text in TRUE_WORDS else "false")
    assert Settings.from_env({name: rendered}) == settings


def test_the_boolean_variables_are_found() -> None:
    assert {"LSAT_TRAINER_BF16", "LSAT_DRIFT_DETECTION", "LSAT_TRAINER_MERGE"} <= set(BOOLEANS)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LSAT_TRAINER_BF16": "maybe"}, "LSAT_TRAINER_BF16='maybe'"),
        ({"LSAT_DRIFT_DETECTION": "enabled"}, "LSAT_DRIFT_DETECTION='enabled'"),
        ({"LSAT_TRAINER_EPOCHS": "two"}, "LSAT_TRAINER_EPOCHS='two'"),
        ({"LSAT_SCORER_PORT": "70000"}, "LSAT_SCORER_PORT='70000'"),
        ({"LSAT_KAFKA_PARTITIONS": "0"}, "LSAT_KAFKA_PARTITIONS='0'"),
        ({"LSAT_TRAINER_LAYERS": "top"}, "LSAT_TRAINER_LAYERS='top'"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"LSAT_TRAINER_EPOCHS": "x", "LSAT_SCORER_PORT": "y"})
    assert "LSAT_TRAINER_EPOCHS='x'" in str(info.value)
    assert "LSAT_SCORER_PORT='y'" in str(info.value)


def test_empty_means_unset() -> None:
    env = {name: "" for name in variable_names()}
    assert Settings.from_env(env) == Settings()


def test_unknown_and_foreign_variables_are_ignored() -> None:
    assert Settings.from_env({"PATH": "/bin", "LSAT_SHARED_DATA": "/d"}) == Settings()


def test_to_env_round_trips_every_variable() -> None:
    changed = Settings.from_env({name: text for name, text, _, _ in LEGACY})
    changed = changed.with_overrides(admin_token="a", client_token="c")
    env = to_env(changed)
    assert set(env) == set(variable_names())
    assert Settings.from_env(env) == changed
    assert Settings.from_env(to_env(Settings())) == Settings()


def test_the_schema_declares_each_variable_once_and_covers_every_setting() -> None:
    names = variable_names()
    assert len(names) == len(set(names))
    assert all(name.startswith("LSAT_") for name in names)
    leaves = [
        f.name
        for section in (
            Settings().kafka,
            Settings().stream,
            Settings().trainer,
            Settings().scorer,
            Settings(),
        )
        for f in dataclasses.fields(section)
        if f.name not in ("topics", "kafka", "stream", "trainer", "scorer")
    ]
    assert len(names) == len(leaves)


def test_replace_and_construction_validate() -> None:
    settings = Settings()
    stream = dataclasses.replace(settings.stream, window_max_samples=5)
    assert dataclasses.replace(settings, stream=stream).stream.window_max_samples == 5
    with pytest.raises(pydantic.ValidationError, match="window_max_samples"):
        dataclasses.replace(settings.stream, window_max_samples="many")
    assert Settings(home="/x").cache_dir.as_posix() == "/x/cache"  # type: ignore[arg-type]


def test_from_env_reads_only_the_given_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSAT_SCORER_PORT", "9001")
    assert Settings.from_env({}).scorer.port == 8080
    assert Settings.from_env().scorer.port == 9001
    assert Settings().scorer.port == 8080  # the constructor never reads the environment


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:6066"),
        ({"LSAT_BIND_HOST": "0.0.0.0", "LSAT_WORKER_WEB_PORT": "7000"}, "http://127.0.0.1:7000"),
        ({"LSAT_WORKER_URL": "http://worker:6066/"}, "http://worker:6066"),
    ],
)
def test_peers_dial_the_configured_worker_url_never_the_bind_address(
    env: dict[str, str], url: str
) -> None:
    assert Settings.from_env(env).stream.worker_base_url == url


def test_the_cli_names_a_bad_variable_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lsat.apps.cli import main

    monkeypatch.setenv("LSAT_TRAINER_EPOCHS", "two")
    assert main(["adapters", "list"]) == 2
    assert "LSAT_TRAINER_EPOCHS='two'" in capsys.readouterr().err


def test_the_cli_names_a_bad_option_value_and_exits_2(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from lsat.apps.cli import main

    assert main(["--home", str(tmp_path), "worker", "--window-size", "0"]) == 2
    assert "window_max_samples=0" in capsys.readouterr().err


def test_retry_and_drift_window_variables_reach_their_components() -> None:
    from lsat.adapters.trainer.retry import RetryPolicy
    from lsat.stream.processor import window_policy

    settings = Settings.from_env(
        {
            "LSAT_TRAINER_MAX_ATTEMPTS": "5",
            "LSAT_TRAINER_RETRY_BACKOFF_S": "0.5",
            "LSAT_WINDOW_MAX_SAMPLES": "100",
            "LSAT_WINDOW_MIN_SAMPLES_ON_DRIFT": "30",
        }
    )
    policy = RetryPolicy.from_settings(settings.trainer)
    assert (policy.max_attempts, policy.backoff_s, policy.factor) == (5, 0.5, 2.0)
    assert window_policy(settings).drift_close_min == 30
    assert window_policy(Settings()).drift_close_min == 500  # a quarter of 2,000 by default


def test_event_and_dead_letter_limits_reach_the_worker(tmp_path: Path) -> None:
    from lsat.stream.worker import build_worker

    settings = Settings.from_env(
        {
            "LSAT_HOME": str(tmp_path),
            "LSAT_KAFKA_BOOTSTRAP": "127.0.0.1:9",  # the app is built, never started
            "LSAT_MAX_EVENT_BYTES": "2048",
            "LSAT_DLQ_PAYLOAD_BYTES": "1024",
            "LSAT_DLQ_RECORD_BYTES": "8192",
        }
    )
    _app, processor = build_worker(settings)
    try:
        assert processor.max_event_bytes == 2048
        assert (processor.dlq.max_payload_bytes, processor.dlq.max_record_bytes) == (1024, 8192)
    finally:
        processor.store.close()
