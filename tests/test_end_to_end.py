"""End to end on a real tansu broker with the tiny random Llama: replay → windows → retrain →
version registered and published → scorer serving it (GET /adapters) → per-adapter AUC on the
trainer's /metrics. Drives :class:`lsat.orchestrator.UpRun`, checking while everything runs."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lsat.orchestrator import UpOptions, UpRun
from lsat.orchestrator.live_table import scrape_gauge
from lsat.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def tiny_settings(home: Path) -> Settings:
    """Tiny model, tiny windows, 1 s group joins on tansu."""
    settings = Settings.from_env({}).with_overrides(home=home, base_model="tiny-llama")
    stream = dataclasses.replace(settings.stream, session_timeout_s=2.0, heartbeat_interval_s=0.5)
    trainer = dataclasses.replace(settings.trainer, max_samples_per_window=40)
    return dataclasses.replace(settings, stream=stream, trainer=trainer)


def test_replay_retrain_publish_serve_and_metrics(ml100k_dir: Path, tmp_path: Path) -> None:
    options = UpOptions(
        dataset=ml100k_dir, windows=2, window_size=40, long_windows=1, free_ports=True,
        refresh_s=0.5, step_timeout_s=240,
    )  # fmt: skip
    seen: dict[str, object] = {}

    def while_running(run: UpRun) -> None:
        from adapters.registry import open_registry

        with open_registry(run.database_url) as registry:
            seen["serving_short"] = registry.resolve("serving-short")
            seen["serving_long"] = registry.resolve("serving-long")
            seen["shorts"] = registry.list(kind="short")
        url = f"http://127.0.0.1:{run.ports.scorer}/adapters"
        wanted = seen["serving_short"].version  # type: ignore[union-attr]
        for _ in range(120):  # the swap follows adapter.versions asynchronously
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    seen["adapters"] = json.loads(response.read())
            except urllib.error.HTTPError:  # 503 until something serves
                seen["adapters"] = None
            if seen["adapters"] and seen["adapters"]["versions"].get("short") == wanted:
                break
            time.sleep(0.5)
        metrics = run.urls["trainer metrics"]
        seen["auc"] = {
            a: scrape_gauge(metrics, "lsat_adapter_auc", {"adapter": a})
            for a in ("long", "short", "combined")
        }
        seen["rows"] = list(run.rows)

    run = UpRun(tiny_settings(tmp_path), options)
    assert run.run(on_done=while_running) == 0
    shorts = seen["shorts"]
    assert len(shorts) == 2
    window_ids = sorted(int(w) for v in shorts for w in v.window_ids)
    (first,) = run.bootstrap_windows
    assert window_ids == [first + 1, first + 2]  # the long adapter's window is not retrained
    serving_short, serving_long = seen["serving_short"], seen["serving_long"]
    assert serving_long is not None and serving_long.version == 1
    assert serving_short is not None
    served = seen["adapters"]["versions"]
    assert served == {"long": 1, "short": serving_short.version, **served}
    assert served["short"] == max(v.version for v in shorts if v.status == "candidate")
    auc = seen["auc"]
    for adapter in ("long", "short", "combined"):
        assert auc[adapter] is not None and 0.0 <= auc[adapter] <= 1.0, auc
    rows = {row.window_id: row for row in seen["rows"]}
    assert rows[first + 2].auc_long is not None and rows[first + 2].auc_short is not None
    assert rows[first + 2].auc_combined == pytest.approx(auc["combined"])
