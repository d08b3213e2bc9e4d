"""Per-period CSV, second-half summary, Markdown/rich table and plot (no model)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from rich.console import Console

from lsat.adapters.experiment.report import (
    PeriodResult,
    plot_auc,
    read_period_csv,
    render_summary_table,
    summarize,
    summary_markdown,
    write_period_csv,
    write_summary,
)


def _rows() -> list[PeriodResult]:
    rows = []
    for period in (2, 3, 4, 5):
        rows.append(PeriodResult("short", period, period - 1, auc=0.5 + 0.05 * period, n_test=10))
        rows.append(
            PeriodResult(
                "mf", period, period - 1, auc=0.6, warm_auc=0.62, cold_auc=float("nan"), n_test=10
            )
        )
        if period >= 4:  # a long-based strategy is undefined before m
            rows.append(
                PeriodResult(
                    "lsat-en", period, period - 1, auc=0.9, mix=0.2 * period, train_seconds=2.0
                )
            )
    return rows


def test_summary_averages_the_second_half_only() -> None:
    summaries = {s.strategy: s for s in summarize(_rows(), n_periods=5)}
    assert list(summaries) == ["short", "lsat-en", "mf"]  # canonical order
    assert summaries["short"].auc == pytest.approx((0.7 + 0.75) / 2)
    assert summaries["short"].periods == 2
    assert summaries["lsat-en"].mix == pytest.approx((0.8 + 1.0) / 2)
    assert summaries["lsat-en"].train_seconds == pytest.approx(2.0)
    assert math.isnan(summaries["mf"].cold_auc)
    assert summaries["mf"].warm_auc == pytest.approx(0.62)


def test_summary_counts_only_defined_periods() -> None:
    rows = [
        PeriodResult("long", 3, 2, auc=float("nan"), note="n/a"),
        PeriodResult("long", 4, 3, auc=0.7),
    ]
    (summary,) = summarize(rows, n_periods=4)
    assert summary.periods == 1 and summary.auc == pytest.approx(0.7)


def test_csv_round_trip_keeps_every_field(tmp_path: Path) -> None:
    rows = _rows()
    path = write_period_csv(rows, tmp_path / "periods.csv")
    back = read_period_csv(path)
    assert len(back) == len(rows)
    key = lambda r: (r.period, r.strategy)  # noqa: E731
    for a, b in zip(sorted(rows, key=key), sorted(back, key=key), strict=True):
        assert a.to_row().keys() == b.to_row().keys()
        for name, value in a.to_row().items():
            other = b.to_row()[name]
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(other)
            else:
                assert other == value, name


def test_summary_files_table_and_plot(tmp_path: Path) -> None:
    summaries = summarize(_rows(), n_periods=5)
    write_summary(summaries, tmp_path, title="test")
    md = (tmp_path / "summary.md").read_text()
    assert "| lsat-en | 2 | 0.9000 |" in md and "n/a" in md
    assert (tmp_path / "summary.csv").read_text().splitlines()[0].startswith("strategy,periods")
    console = Console(record=True, width=160)
    console.print(render_summary_table(summaries, title="Table 2"))
    text = console.export_text()
    assert "lsat-en" in text and "0.9000" in text
    png = plot_auc(_rows(), 5, tmp_path / "auc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_has_one_line_per_strategy() -> None:
    summaries = summarize(_rows(), n_periods=5)
    lines = summary_markdown(summaries).strip().splitlines()
    assert len(lines) == 2 + len(summaries)
