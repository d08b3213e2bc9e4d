"""The live table reads every AUC of a window from the registry's per-window scores (long,
short, ensemble, hybrid, baseline), marks what beats the baseline, and falls back to the
combined gauge for windows without scores."""

from __future__ import annotations

from pathlib import Path

from lsat.adapters.lifecycle.registry import open_registry
from lsat.apps.orchestrator.live_table import COLUMNS, collect_rows, render
from lsat.stream.store import SampleStore


def test_rows_show_the_hybrid_and_the_baseline_side_by_side(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lsat.sqlite'}"
    store = SampleStore(url)
    with open_registry(url) as registry:
        for window in (1, 2, 3):
            store.open_window(window)
            store.close_window(window, "full")
        store.open_window(4)
        metrics = {
            "long": {"auc": 0.61},
            "short": {"auc": 0.58},
            "combined": {"auc": 0.62},
            "hybrid": {"auc": 0.71},
            "baseline": {"auc": 0.66},
        }
        registry.record_window_scores(2, {"label": [0, 1]}, {"baseline": {"auc": 0.64}})
        registry.record_window_scores(3, {"label": [0, 1]}, metrics)
        rows = collect_rows(store, registry, combined={1: 0.55, 3: 0.5})
    store.close()
    by_id = {row.window_id: row for row in rows}
    assert sorted(by_id) == [1, 2, 3, 4]
    three = dict(zip(COLUMNS, by_id[3].cells(), strict=True))
    assert (three["AUC long"], three["AUC short"], three["AUC comb."]) == (
        "0.610",
        "0.580",
        "0.620",
    )
    assert (three["AUC hybrid"], three["AUC base"]) == ("0.710*", "0.660")
    one = dict(zip(COLUMNS, by_id[1].cells(), strict=True))
    assert (one["AUC comb."], one["AUC base"], one["AUC hybrid"]) == ("0.550", "—", "—")
    assert by_id[2].auc_baseline == 0.64 and by_id[2].auc_hybrid is None
    assert by_id[4].trigger == "open"
    assert render(rows, {}, "status").renderables[0].columns[6].header == "AUC hybrid"
