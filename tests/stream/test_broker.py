"""The embedded tansu broker, topic creation, client kwargs and the /metrics server."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from lsat.core.settings import KafkaSettings
from lsat.stream.broker import BrokerError, EmbeddedBroker, find_tansu, free_port
from lsat.stream.kafka_client import (
    KafkaClientError,
    aiokafka_kwargs,
    faust_broker_credentials,
    kafka_python_kwargs,
)
from lsat.stream.metrics import MetricsServer, StreamMetrics


def test_tansu_binary_is_found() -> None:
    binary = find_tansu()
    assert binary.name == "tansu" and binary.is_file()


@pytest.mark.parametrize("url", ["s3://tansu/", "postgres://x@localhost", "file:///tmp/x"])
def test_non_memory_storage_is_refused(url: str) -> None:
    with pytest.raises(BrokerError, match=repr(url)):
        EmbeddedBroker(storage_url=url)


def test_broker_command_binds_loopback_with_memory_storage() -> None:
    command = EmbeddedBroker(port=12345).command()
    assert command[1] == "broker"
    assert command[command.index("--listener-url") + 1] == "tcp://127.0.0.1:12345"
    assert command[command.index("--advertised-listener-url") + 1] == "tcp://127.0.0.1:12345"
    assert command[command.index("--storage-engine") + 1] == "memory://tansu/"


@pytest.mark.kafka
def test_session_broker_has_the_topics(tansu_broker: EmbeddedBroker) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=tansu_broker.bootstrap_servers)
    try:
        names = set(admin.list_topics())
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
    finally:
        admin.close()
    topics = tansu_broker.settings.topics
    assert {topics.interactions, topics.items, topics.dlq, topics.retrain, topics.versions} <= names
    assert described[topics.interactions] == 2 and described[topics.dlq] == 1


@pytest.mark.kafka
def test_broker_stops_cleanly_and_refuses_a_busy_port(tmp_path: Path) -> None:
    port = free_port()
    broker = EmbeddedBroker(KafkaSettings(), port=port, log_path=tmp_path / "tansu.log")
    with broker:
        assert broker.running
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(KafkaSettings(), port=port).start()
    assert not broker.running
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (KafkaSettings(), "no bootstrap_servers"),
        (KafkaSettings(bootstrap_servers="nohostport"), "'nohostport'"),
        (KafkaSettings(bootstrap_servers="k:1", security_protocol="TLS"), "'TLS'"),
        (
            KafkaSettings(bootstrap_servers="k:1", security_protocol="SASL_SSL"),
            "sasl_mechanism None",
        ),
        (
            KafkaSettings(
                bootstrap_servers="k:1", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN"
            ),
            "needs sasl_username",
        ),
    ],
)
def test_bad_kafka_settings_are_named(settings: KafkaSettings, message: str) -> None:
    with pytest.raises(KafkaClientError, match=message):
        kafka_python_kwargs(settings)


def test_sasl_ssl_kwargs_for_every_client() -> None:
    settings = KafkaSettings(
        bootstrap_servers="k1:9093,k2:9093",
        security_protocol="sasl_ssl",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="user",
        sasl_password="secret",
    )
    kp = kafka_python_kwargs(settings)
    assert kp["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert (kp["security_protocol"], kp["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    ak = aiokafka_kwargs(settings)
    assert ak["bootstrap_servers"] == "k1:9093,k2:9093" and ak["ssl_context"] is not None
    credentials = faust_broker_credentials(settings)
    assert credentials.username == "user" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert faust_broker_credentials(KafkaSettings(bootstrap_servers="k:1")) is None


def test_metrics_server_serves_its_registry_on_loopback() -> None:
    metrics = StreamMetrics()
    metrics.events.labels(status="dlq").inc(3)
    server = MetricsServer(metrics, port=0).start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        body = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        server.stop()
    assert 'lsat_stream_events_total{status="dlq"} 3.0' in body
    assert "lsat_stream_processing_seconds_bucket" in body
