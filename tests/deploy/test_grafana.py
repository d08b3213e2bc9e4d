"""The Grafana dashboard parsed through grafana-foundation-sdk's models, plus structure checks."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml
from deploy_paths import DASHBOARD, GRAFANA, dashboard_queries
from needs import missing

if importlib.util.find_spec("grafana_foundation_sdk") is None:  # a dev dependency
    missing("grafana-foundation-sdk not installed (pip install -e '.[dev]')", module=True)

REQUIRED_METRICS = (
    "lsat_adapter_auc",
    'lsat_window_auc{model="served"}',
    'lsat_window_auc{model="baseline"}',
    "lsat_ensemble_alpha",
    "lsat_merge_weight",
    "lsat_stream_drift_statistic",
    "lsat_stream_events_total",
    "lsat_stream_consumer_lag_messages",
    "lsat_retrain_duration_seconds",
    "lsat_hot_swap_latency_seconds",
    "lsat_scoring_latency_seconds",
)


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def parsed(raw: dict):
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    return Dashboard.from_json(raw)


def test_committed_json_is_what_the_builder_writes() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboard", GRAFANA / "build_dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text() == module.render(), "run deploy/grafana/build_dashboard.py"


def test_sdk_models_keep_every_panel_and_query(raw: dict, parsed) -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import prometheus, timeseries

    assert parsed.uid == "lsat-stream" and len(parsed.panels) == len(raw["panels"])
    for panel in parsed.panels:
        assert isinstance(panel.options, timeseries.Options), panel.title
        for target in panel.targets:
            assert isinstance(target, prometheus.Dataquery), panel.title
    encoded = json.loads(json.dumps(parsed, cls=JSONEncoder))
    for before, after in zip(raw["panels"], encoded["panels"], strict=True):
        assert after["targets"] == before["targets"]
        assert after["gridPos"] == before["gridPos"]


def test_ids_unique_and_panels_do_not_overlap(raw: dict) -> None:
    ids = [p["id"] for p in raw["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in raw["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine


def test_every_query_uses_the_provisioned_datasource(raw: dict) -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    for panel in raw["panels"]:
        assert panel["datasource"]["uid"] == uid
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"])
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/lsat.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


@pytest.mark.parametrize("metric", REQUIRED_METRICS)
def test_dashboard_shows(metric: str) -> None:
    assert any(metric in expr for _, expr in dashboard_queries())


def test_retrains_are_marked_as_annotations(raw: dict) -> None:
    exprs = [a.get("expr", "") for a in raw["annotations"]["list"]]
    assert any("lsat_retrain_total" in e for e in exprs)
