"""The live view of ``lsat up``: one row per window, read from the sample store and registry.

Per window: trigger, samples, the test-then-train AUC of the long / short adapters that served
when it closed, of their α ensemble, of the hybrid combiner (what the scorer serves as the
combined score once the trainer has fitted one) and of the best non-LLM baseline (the rate stack
fitted on earlier windows, else the history like-rate) — all from the registry's per-window
scores (``adapter_window_scores``; the ensemble falls back to the trainer's
``lsat_adapter_auc{adapter="combined"}`` gauge for a trainer that does not record them) — then
the α the new short adapter got and what happened to it (promoted / rejected). An AUC that
beats the window's baseline is marked ``*``: does the LLM earn its cost?

>>> row = WindowRow(3, "full", 40, auc_long=0.61, auc_short=0.58, auc_baseline=0.6)
>>> row.cells()
['3', 'full', '40', '0.610*', '0.580', '—', '—', '0.600', '—', '—']
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text

__all__ = [
    "CombinedTracker",
    "WindowRow",
    "collect_rows",
    "render",
    "scrape",
    "scrape_gauge",
    "scrape_total",
    "scrape_window_combined",
]

COLUMNS = (
    "window",
    "trigger",
    "samples",
    "AUC long",
    "AUC short",
    "AUC comb.",
    "AUC hybrid",
    "AUC base",
    "α",
    "version",
)


def _fmt(value: float | None, baseline: float | None = None) -> str:
    if value is None:
        return "—"
    better = baseline is not None and value > baseline
    return f"{value:.3f}{'*' if better else ''}"


@dataclass
class WindowRow:
    """What the table shows for one window."""

    window_id: int
    trigger: str
    samples: int
    auc_long: float | None = None
    auc_short: float | None = None
    auc_combined: float | None = None
    alpha: float | None = None
    version: str = "—"
    auc_hybrid: float | None = None
    auc_baseline: float | None = None

    def cells(self) -> list[str]:
        """The row as display strings, in :data:`COLUMNS` order (``*``: above the baseline)."""
        base = self.auc_baseline
        return [
            str(self.window_id),
            self.trigger,
            str(self.samples),
            _fmt(self.auc_long, base),
            _fmt(self.auc_short, base),
            _fmt(self.auc_combined, base),
            _fmt(self.auc_hybrid, base),
            _fmt(base),
            "—" if self.alpha is None else f"{self.alpha:.1f}",
            self.version,
        ]


@dataclass
class CombinedTracker:
    """Remembers the combined AUC per window from successive scrapes of the trainer gauge.

    Each scrape gives the window the trainer's gauges describe (``lsat_window_id``) and the
    combined AUC, and updates that window only; a later scrape of the same window overwrites.

    >>> t = CombinedTracker()
    >>> t.update(newest_window=2, gauge=0.7); t.update(newest_window=3, gauge=0.6)
    >>> t.by_window
    {2: 0.7, 3: 0.6}
    """

    by_window: dict[int, float] = field(default_factory=dict)

    def update(self, newest_window: int | None, gauge: float | None) -> None:
        """Record ``gauge`` for the newest evaluated window (ignored when either is unknown)."""
        if newest_window is not None and gauge is not None:
            self.by_window[newest_window] = gauge


def scrape(url: str, timeout_s: float = 2.0) -> list[tuple[str, dict[str, str], float]]:
    """Every sample ``(name, labels, value)`` of a Prometheus text endpoint ([] if unreachable)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text = response.read().decode()
    except OSError:
        return []
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def scrape_gauge(
    url: str, name: str, labels: Mapping[str, str], timeout_s: float = 2.0
) -> float | None:
    """The value of one sample with ``name`` and ``labels``; ``None`` if absent/unreachable."""
    for sample, sample_labels, value in scrape(url, timeout_s):
        if sample == name and all(sample_labels.get(k) == v for k, v in labels.items()):
            return value
    return None


def scrape_window_combined(url: str, timeout_s: float = 2.0) -> tuple[int | None, float | None]:
    """``(lsat_window_id, combined AUC gauge)`` from one scrape of the trainer's metrics.

    Both come from the same scrape, so the AUC is attributed to the window the trainer says it
    describes (the trainer sets ``lsat_window_id`` before its AUC gauges). ``None`` where absent.
    """
    window = combined = None
    for sample, labels, value in scrape(url, timeout_s):
        if sample == "lsat_window_id":
            window = int(value)
        elif sample == "lsat_adapter_auc" and labels.get("adapter") == "combined":
            combined = value
    return window, combined


def scrape_total(url: str, name: str, timeout_s: float = 2.0) -> float:
    """The sum of every sample called ``name`` (0 when absent/unreachable)."""
    return sum(value for sample, _, value in scrape(url, timeout_s) if sample == name)


def collect_rows(
    store, registry, combined: Mapping[int, float], limit: int = 30
) -> list[WindowRow]:
    """Rows of the newest ``limit`` windows (oldest first) from a SampleStore and registry."""
    from lsat.adapters.lifecycle.publication import ALPHA_METRIC

    windows = store.last_closed_windows(limit) + store.open_windows()
    evaluations = registry.evaluations()
    scores = {s.window_id: s.metrics for s in registry.window_scores(limit=limit)}
    shorts = registry.list(kind="short")
    longs = registry.list(kind="long")
    rows = []
    for window in sorted(windows, key=lambda w: w.id)[-limit:]:
        trigger = window.trigger or ("open" if window.status == "open" else "—")
        row = WindowRow(window.id, trigger, window.count)
        for ev in evaluations:
            if ev.window_id == str(window.id):
                if ev.kind == "long":
                    row.auc_long = ev.auc
                elif ev.kind == "short":
                    row.auc_short = ev.auc
        row.auc_combined = combined.get(window.id)
        scored = scores.get(str(window.id), {})
        row.auc_long = scored.get("long", {}).get("auc", row.auc_long)
        row.auc_short = scored.get("short", {}).get("auc", row.auc_short)
        row.auc_combined = scored.get("combined", {}).get("auc", row.auc_combined)
        row.auc_hybrid = scored.get("hybrid", {}).get("auc")
        row.auc_baseline = scored.get("baseline", {}).get("auc")
        for version in shorts:
            if str(window.id) in {str(w) for w in version.window_ids}:
                alpha = version.metrics.get(ALPHA_METRIC)
                row.alpha = None if alpha is None else float(alpha)
                verdict = "promoted" if version.status == "candidate" else version.status
                row.version = f"short/v{version.version} {verdict}"
        for version in longs:
            if str(window.id) in {str(w) for w in version.window_ids}:
                row.version = f"long/v{version.version} (trained on it)"
        rows.append(row)
    return rows


def render(rows: Sequence[WindowRow], urls: Mapping[str, str], status: str) -> Group:
    """The table, the service URLs and a status line, as one renderable."""
    table = Table(title="lsat up — test-then-train per window", expand=False)
    for column in COLUMNS:
        table.add_column(column, justify="right" if column != "version" else "left")
    for row in rows:
        table.add_row(*row.cells())
    lines = Text()
    for name, url in urls.items():
        lines.append(f"{name:>18}: ", style="bold")
        lines.append(f"{url}\n")
    return Group(table, lines, Text(status, style="cyan"))
