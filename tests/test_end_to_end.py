"""End to end on a real tansu broker with the tiny random Llama: replay → windows → retrain →
version registered and published → scorer serving it (GET /adapters) → per-adapter AUC (and the
window it belongs to) on the trainer's /metrics. Drives :class:`lsat.apps.orchestrator.UpRun`
through
the shared ``live_system`` run (tests/live_system.py), checking while everything runs."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_replay_retrain_publish_serve_and_metrics(live_system) -> None:  # type: ignore[no-untyped-def]
    result = live_system
    assert result.code == 0, f"lsat up exited {result.code}; logs in {result.logs}"
    assert "end_to_end" not in result.errors, result.errors.get("end_to_end")
    seen = result.seen
    shorts = seen["shorts"]
    assert len(shorts) == 2
    window_ids = sorted(int(w) for v in shorts for w in v.window_ids)
    (first,) = result.bootstrap_windows
    assert window_ids == [first + 1, first + 2]  # the long adapter's window is not retrained
    serving_short, serving_long = seen["serving_short"], seen["serving_long"]
    assert serving_long is not None and serving_long.version == 1
    assert serving_short is not None
    served = seen["adapters"]["versions"]  # what the scorer serves is what the registry names
    assert {kind: served.get(kind) for kind in ("long", "short")} == {
        "long": 1,
        "short": serving_short.version,
    }
    assert set(served) <= {"long", "short", "merged"}, served
    assert served["short"] == max(v.version for v in shorts if v.status == "candidate")
    auc = seen["auc"]
    for adapter in ("long", "short", "combined"):
        assert auc[adapter] is not None and 0.0 <= auc[adapter] <= 1.0, auc
    # lsat_window_id names the window the AUC gauges describe (the trainer may have moved on
    # to the next window by now): its registry evaluation holds the same long AUC
    assert seen["window_id"] is not None and seen["window_id"] >= first + 2
    assert seen["registry_auc_long"] == pytest.approx(seen["window_auc_long"])
    rows = {row.window_id: row for row in seen["rows"]}
    assert rows[first + 2].auc_long is not None and rows[first + 2].auc_short is not None
    assert rows[first + 2].auc_combined is not None and 0.0 <= rows[first + 2].auc_combined <= 1.0
    # the table's combined AUC of a window is the trainer's gauge while lsat_window_id named it
    # (one scrape gives both); the trainer may already be on window first + 3 by now
    window = int(seen["window_id"])
    if window == first + 2 or (window in rows and rows[window].auc_combined is not None):
        assert rows[window].auc_combined == pytest.approx(seen["window_auc_combined"])
