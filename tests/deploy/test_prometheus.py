"""promtool on the scrape config, the alert rules and the alert unit tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from deploy_paths import ALERTS, ALERTS_TEST, PROMETHEUS_CONFIG
from needs import missing

from lsat.core.settings import Settings


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        missing("promtool not installed (apt-get install prometheus; .ci/run does it)")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", str(PROMETHEUS_CONFIG)),
        ("check", "rules", str(ALERTS)),
        ("test", "rules", str(ALERTS_TEST)),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_lsat_process_is_scraped_on_its_settings_port() -> None:
    """Each lsat job discovers its compose service's replicas by DNS, on the settings port."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    discovered = {
        job["job_name"]: (job["dns_sd_configs"][0]["names"], job["dns_sd_configs"][0]["port"])
        for job in config["scrape_configs"]
        if job["job_name"].startswith("lsat-")
    }
    settings = Settings()
    assert discovered == {
        "lsat-worker": (["worker"], settings.stream.metrics_port),
        "lsat-trainer": (["trainer"], settings.trainer.metrics_port),
        "lsat-scorer": (["scorer"], settings.scorer.port),
    }


def test_every_alert_has_severity_and_summary() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
