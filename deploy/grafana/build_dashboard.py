"""Write deploy/grafana/dashboards/lsat.json (the dashboard's source; run after editing).

    python deploy/grafana/build_dashboard.py

tests/deploy/test_grafana.py checks that the committed JSON is what this script writes.
"""

from __future__ import annotations

import json
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "lsat-prometheus"}
OUTPUT = Path(__file__).with_name("dashboards") / "lsat.json"
RATE = "$__rate_interval"

# (title, unit, [(expr, legend)], description); panels are laid out two per row.
PANELS: list[tuple[str, str, list[tuple[str, str]], str]] = [
    (
        "AUC per closed window (long / short / combined)",
        "none",
        [('lsat_adapter_auc{adapter=~"long|short|combined"}', "{{adapter}}")],
        "Each window is scored by what serves now, before training on it (test-then-train).",
    ),
    (
        "Served score vs the non-LLM baseline (AUC per closed window)",
        "none",
        [
            (
                'lsat_window_auc{model=~"served|hybrid|combined|baseline|history_rate|rate_stack"}',
                "{{model}}",
            ),
            (
                'lsat_window_auc{model="served"}'
                ' - ignoring(model) lsat_window_auc{model="baseline"}',
                "served − baseline",
            ),
        ],
        "Test-then-train AUC of what the scorer serves as the combined score (the hybrid "
        "combiner once fitted, else the α ensemble) next to the best non-LLM baseline (the rate "
        "stack fitted on earlier windows, else the history like-rate). Below zero, the LLM does "
        "not earn its cost (alert LsatServedBelowBaseline).",
    ),
    (
        "Logloss per closed window",
        "none",
        [('lsat_adapter_logloss{adapter=~"long|short|combined"}', "{{adapter}}")],
        "Same windows as the AUC panel.",
    ),
    (
        "Window evaluated",
        "none",
        [("lsat_window_id", "window id")],
        "The window the AUC and logloss panels describe (last evaluated and trained on); "
        "a step marks the next window's values.",
    ),
    (
        "Ensemble α and merge weight",
        "none",
        [
            ('lsat_ensemble_alpha{job="lsat-trainer"}', "α chosen (trainer)"),
            ('lsat_ensemble_alpha{job="lsat-scorer"}', "α serving (scorer)"),
            ("lsat_merge_weight", "merge weight (long share)"),
        ],
        "α weighs the long adapter: α·P_long + (1−α)·P_short.",
    ),
    (
        "Drift statistics (retrains marked)",
        "none",
        [
            ("lsat_stream_drift_statistic", "stream {{detector}}"),
            ("lsat_trainer_loss_drift_statistic", "per-sample loss (Page-Hinkley)"),
        ],
        "Detector statistics; annotations mark finished retrain jobs and drift detections.",
    ),
    (
        "Drift detections",
        "short",
        [
            (
                f"sum by (detector) (increase(lsat_stream_drift_detections_total[{RATE}]))",
                "{{detector}}",
            ),
            (f"sum(increase(lsat_trainer_loss_drift_detections_total[{RATE}]))", "loss drift"),
        ],
        "",
    ),
    (
        "Events by status",
        "ops",
        [(f"sum by (status) (rate(lsat_stream_events_total[{RATE}]))", "{{status}}")],
        "ok, dlq, late, duplicate (events/s).",
    ),
    (
        "Dead letters by reason",
        "ops",
        [(f"sum by (reason) (rate(lsat_stream_dead_letters_total[{RATE}]))", "{{reason}}")],
        "",
    ),
    (
        "Consumer lag",
        "short",
        [("sum by (topic) (lsat_stream_consumer_lag_messages)", "{{topic}}")],
        "Messages behind the log end (a lower bound on tansu).",
    ),
    (
        "Open window fill",
        "percentunit",
        [("lsat_stream_window_fill_ratio", "fill")],
        "",
    ),
    (
        "Worker processing latency",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le) "
                f"(rate(lsat_stream_processing_seconds_bucket[{RATE}])))",
                "p95",
            ),
        ],
        "",
    ),
    (
        "Retrain jobs by trigger and outcome",
        "short",
        [
            (
                f"sum by (trigger, outcome) (increase(lsat_retrain_total[{RATE}]))",
                "{{trigger}} {{outcome}}",
            )
        ],
        "",
    ),
    (
        "Retrain duration",
        "s",
        [
            (
                "histogram_quantile(0.5, sum by (le) "
                "(rate(lsat_retrain_duration_seconds_bucket[1h])))",
                "p50 (1h)",
            ),
            (
                "sum(rate(lsat_retrain_duration_seconds_sum[1h])) "
                "/ sum(rate(lsat_retrain_duration_seconds_count[1h]))",
                "mean (1h)",
            ),
        ],
        "",
    ),
    (
        "Hot-swap latency (publication → serving)",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le) "
                "(rate(lsat_hot_swap_latency_seconds_bucket[1h])))",
                "p95 (1h)",
            ),
            (f"sum by (outcome) (increase(lsat_hot_swaps_total[{RATE}]))", "swaps {{outcome}}"),
        ],
        "",
    ),
    (
        "Scoring latency",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le, endpoint) "
                f"(rate(lsat_scoring_latency_seconds_bucket[{RATE}])))",
                "p95 {{endpoint}}",
            ),
            (
                "histogram_quantile(0.5, sum by (le, endpoint) "
                f"(rate(lsat_scoring_latency_seconds_bucket[{RATE}])))",
                "p50 {{endpoint}}",
            ),
        ],
        "",
    ),
    (
        "Scoring requests",
        "reqps",
        [
            (
                f"sum by (endpoint, status) (rate(lsat_scoring_requests_total[{RATE}]))",
                "{{endpoint}} {{status}}",
            )
        ],
        "",
    ),
    (
        "Active adapter versions",
        "none",
        [("lsat_active_adapter_version", "{{job}} {{kind}}")],
        "Registry version serving per kind, as the trainer and the scorer see it.",
    ),
    (
        "Targets up",
        "none",
        [('up{job=~"lsat-.*"}', "{{job}}")],
        "",
    ),
]

ANNOTATIONS = [
    ("Retrains", "changes(lsat_retrain_total[1m]) > 0", "trigger,outcome", "purple"),
    ("Drift detections", "changes(lsat_stream_drift_detections_total[1m]) > 0", "detector", "red"),
]


def panel(panel_id: int, title: str, unit: str, queries, description: str) -> dict:
    """One timeseries panel (two per 24-column row)."""
    index = panel_id - 1
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "datasource": DATASOURCE,
                "refId": chr(ord("A") + n),
                "expr": expr,
                "legendFormat": legend,
            }
            for n, (expr, legend) in enumerate(queries)
        ],
    }


def annotation(name: str, expr: str, tags: str, color: str) -> dict:
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": color,
        "expr": expr,
        "step": "15s",
        "tagKeys": tags,
        "titleFormat": name,
        "useValueForTime": False,
    }


def dashboard() -> dict:
    """The whole dashboard model."""
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "uid": "lsat-stream",
        "title": "lsat-stream",
        "description": "LSAT on a stream: adapter quality per window, α, drift, retrains, serving.",
        "tags": ["lsat", "recommender"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": [builtin, *(annotation(*a) for a in ANNOTATIONS)]},
        "templating": {"list": []},
        "panels": [panel(n, *spec) for n, spec in enumerate(PANELS, start=1)],
    }


def render() -> str:
    """The JSON text written to :data:`OUTPUT`."""
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
