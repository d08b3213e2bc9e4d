"""``docker compose up --scale worker=3 --scale scorer=2`` works by design (no Docker here: the
compose file, the Prometheus and HAProxy configs are checked as data, HAProxy's own checker runs
on its config)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from deploy_paths import COMPOSE_FILE, ENV_EXAMPLE, HAPROXY_CONFIG, PROMETHEUS_CONFIG
from needs import missing

from lsat.apps.cli import build_parser
from lsat.core.settings import Settings

SCALED = ("worker", "trainer", "scorer")
"""Services meant to run as several replicas (the trainer: one active, the others standbys)."""

SCALE_EXAMPLE = {"worker": 3, "scorer": 2}
"""The README's example: ``--scale worker=3 --scale scorer=2``."""

METRICS_PORT = {
    "worker": Settings().stream.metrics_port,
    "trainer": Settings().trainer.metrics_port,
    "scorer": Settings().scorer.port,
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _default(value: object) -> str:
    """``${VAR:-default}`` → default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


@pytest.mark.parametrize("name", SCALED)
def test_scaled_services_have_no_fixed_name_and_publish_no_host_port(
    compose: dict, name: str
) -> None:
    service = compose["services"][name]
    assert "container_name" not in service, f"{name}: a fixed name allows one replica"
    assert "ports" not in service, f"{name}: a published host port allows one replica"
    assert "hostname" not in service
    # a replica's healthcheck dials itself, never a published port
    assert "127.0.0.1:" in " ".join(service["healthcheck"]["test"])


def test_no_service_has_a_container_name(compose: dict) -> None:
    named = [n for n, s in compose["services"].items() if "container_name" in s]
    assert named == []


def test_topics_get_the_partition_count_every_lsat_service_uses(compose: dict) -> None:
    services = compose["services"]
    topics_job = services["kafka-topics"]
    args = build_parser().parse_args(topics_job["command"])
    assert args.partitions is None, "--partitions would override LSAT_KAFKA_PARTITIONS"
    expected = topics_job["environment"]["LSAT_KAFKA_PARTITIONS"]
    assert expected == "${LSAT_KAFKA_PARTITIONS:-6}"
    for name in SCALED:
        assert services[name]["environment"]["LSAT_KAFKA_PARTITIONS"] == expected, name
    partitions = Settings.from_env({"LSAT_KAFKA_PARTITIONS": _default(expected)}).kafka.partitions
    assert partitions >= SCALE_EXAMPLE["worker"], "the example's workers would sit idle"


def test_env_example_sets_the_partition_count() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    assert "LSAT_KAFKA_PARTITIONS=6" in lines


@pytest.mark.parametrize("name", SCALED)
def test_prometheus_discovers_every_replica_by_dns(compose: dict, name: str) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == f"lsat-{name}")
    assert "static_configs" not in job, "a static target is one replica (or a random one)"
    (sd,) = job["dns_sd_configs"]
    assert sd["type"] == "A"  # Docker's DNS: one A record per replica of a service
    assert sd["names"] == [name] and name in compose["services"]
    assert sd["port"] == METRICS_PORT[name]
    assert compose["services"]["prometheus"]["depends_on"]  # on the compose network


def test_the_scorer_load_balancer_publishes_the_api_and_finds_every_replica(
    compose: dict,
) -> None:
    lb = compose["services"]["scorer-lb"]
    port = Settings.from_env(
        {"LSAT_SCORER_PORT": compose["services"]["scorer"]["environment"]["LSAT_SCORER_PORT"]}
    ).scorer.port
    assert lb["ports"] == [f"127.0.0.1:{port}:{port}"]
    mount = "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
    assert mount in lb["volumes"]
    config = HAPROXY_CONFIG.read_text()
    template = re.search(r"^\s*server-template \S+ (\d+) scorer:(\d+)\s*$", config, re.M)
    assert template, "no server-template over the scorer service name"
    assert int(template.group(1)) >= SCALE_EXAMPLE["scorer"]
    assert int(template.group(2)) == port
    assert re.search(rf"^\s*bind :{port}\s*$", config, re.M)
    assert "parse-resolv-conf" in config  # Docker's DNS, re-resolved at runtime
    assert "option httpchk GET /healthz" in config  # a loading or dead replica gets no traffic


def test_haproxy_accepts_the_config() -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        missing("haproxy not installed (apt-get install haproxy; .ci/run does it)")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(HAPROXY_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
