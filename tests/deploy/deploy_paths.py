"""Paths of the deployment files (a plain module next to the tests, on ``sys.path``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
HAPROXY_CONFIG = DEPLOY / "haproxy" / "haproxy.cfg"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "lsat.json"

GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
"""Values the live test substitutes for Grafana's query macros (Prometheus knows none)."""


def dashboard_queries() -> list[tuple[str, str]]:
    """``(where, expr)`` for every panel target and every Prometheus annotation query."""
    model = json.loads(DASHBOARD.read_text())
    out = []
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for annotation in model["annotations"]["list"]:
        if "expr" in annotation:
            out.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    return out


def with_macros_replaced(expr: str) -> str:
    """Grafana macros replaced by fixed ranges.

    >>> with_macros_replaced("rate(x[$__rate_interval])")
    'rate(x[1m])'
    """
    return re.sub(r"\$__\w+", lambda m: GRAFANA_MACROS[m.group(0)], expr)
