"""Per-period results, the Table-2-style summary, and the AUC-per-period plot.

Everything here is pure over :class:`PeriodResult` rows, so it is tested without a model.

>>> rows = [
...     PeriodResult("short", 2, 1, auc=0.6, logloss=0.7, n_test=10, train_samples=9),
...     PeriodResult("short", 3, 2, auc=0.8, logloss=0.5, n_test=10, train_samples=9),
... ]
>>> [(s.strategy, round(s.auc, 2), s.periods) for s in summarize(rows, n_periods=3)]
[('short', 0.8, 1)]
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypedDict

from rich.table import Table

from lsat.adapters.experiment.strategies import BASELINE_STRATEGIES, STRATEGIES, second_half_periods

__all__ = [
    "PeriodResult",
    "StrategySummary",
    "format_metric",
    "plot_auc",
    "read_period_csv",
    "render_summary_table",
    "summarize",
    "summary_markdown",
    "write_period_csv",
    "write_summary",
]

NAN = float("nan")


@dataclass(frozen=True, slots=True)
class PeriodResult:
    """One strategy tested on one period after updating with the period before.

    ``train_samples`` / ``train_seconds`` count the adapters (or baseline fits) that this
    strategy needed trained in this update, shared adapters counted for every strategy that
    uses them; ``mix`` is the chosen ensemble α or merge weight of the long adapter.
    """

    strategy: str
    period: int
    trained_on: int
    auc: float = NAN
    logloss: float = NAN
    warm_auc: float = NAN
    cold_auc: float = NAN
    n_test: int = 0
    n_cold: int = 0
    train_samples: int = 0
    train_seconds: float = 0.0
    mix: float | None = None
    note: str = ""

    def to_row(self) -> dict[str, object]:
        """A flat dict for CSV / JSON (``mix`` is empty when not applicable)."""
        row = asdict(self)
        row["mix"] = "" if self.mix is None else self.mix
        return row

    @classmethod
    def from_row(cls, row: dict[str, object]) -> PeriodResult:
        """Inverse of :meth:`to_row` (values may be strings, as read from a CSV).

        >>> r = PeriodResult("mf", 3, 2, 0.5, 0.69, 0.6, 0.4, n_test=8, n_cold=2, mix=0.3)
        >>> PeriodResult.from_row({k: str(v) for k, v in r.to_row().items()}) == r
        True
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = row.get(f.name, "")
            if f.name in ("strategy", "note"):
                values[f.name] = str(raw)
            elif f.name in ("period", "trained_on", "n_test", "n_cold", "train_samples"):
                values[f.name] = int(_float(raw)) if raw != "" else 0
            elif f.name == "mix":
                values[f.name] = None if raw in ("", None) else _float(raw)
            else:
                values[f.name] = _float(raw) if raw not in ("", None) else NAN
        return cls(**values)


def _float(raw: object) -> float:
    """A CSV cell (a string) or a number as a float.

    >>> _float("0.5"), _float(2)
    (0.5, 2.0)
    """
    if not isinstance(raw, str | int | float):
        raise TypeError(f"expected a number or a string, got {raw!r}")
    return float(raw)


@dataclass(frozen=True, slots=True)
class StrategySummary:
    """Averages of one strategy over the summary periods (the second half of the periods)."""

    strategy: str
    periods: int
    auc: float
    logloss: float
    warm_auc: float
    cold_auc: float
    train_samples: float
    train_seconds: float
    mix: float
    auc_se: float = NAN
    """Standard error of the mean AUC over those periods (sample sd / √n; NaN below 2)."""


def _standard_error(values: Iterable[float]) -> float:
    """Standard error of the mean of the finite values (NaN with fewer than two).

    >>> round(_standard_error([0.6, 0.7, 0.8]), 4), _standard_error([0.7])
    (0.0577, nan)
    """
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return NAN
    mean = sum(finite) / len(finite)
    variance = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return math.sqrt(variance / len(finite))


def _mean(values: Iterable[float | None]) -> float:
    """Mean of the finite values, NaN when there is none.

    >>> _mean([1.0, float("nan"), 3.0, None]), _mean([])
    (2.0, nan)
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else NAN


def summarize(rows: Sequence[PeriodResult], n_periods: int) -> list[StrategySummary]:
    """Average every strategy over the last ⌊P/2⌋ test periods, in canonical strategy order.

    ``periods`` counts the rows that had a defined AUC.
    """
    keep = set(second_half_periods(n_periods))
    by_strategy: dict[str, list[PeriodResult]] = {}
    for row in rows:
        if row.period in keep:
            by_strategy.setdefault(row.strategy, []).append(row)
    order = [s for s in STRATEGIES if s in by_strategy] + sorted(
        s for s in by_strategy if s not in STRATEGIES
    )
    out = []
    for name in order:
        group = by_strategy[name]
        out.append(
            StrategySummary(
                strategy=name,
                periods=sum(1 for r in group if math.isfinite(r.auc)),
                auc=_mean(r.auc for r in group),
                logloss=_mean(r.logloss for r in group),
                warm_auc=_mean(r.warm_auc for r in group),
                cold_auc=_mean(r.cold_auc for r in group),
                train_samples=_mean(float(r.train_samples) for r in group),
                train_seconds=_mean(r.train_seconds for r in group),
                mix=_mean(r.mix for r in group),
                auc_se=_standard_error(r.auc for r in group),
            )
        )
    return out


def format_metric(value: float, digits: int = 4) -> str:
    """A number for tables; NaN prints as ``n/a``.

    >>> format_metric(0.71234), format_metric(float("nan")), format_metric(12.0, 1)
    ('0.7123', 'n/a', '12.0')
    """
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


_SUMMARY_COLUMNS = (
    ("strategy", "strategy", None),
    ("periods", "n", None),
    ("auc", "AUC", 4),
    ("auc_se", "± s.e.", 4),
    ("warm_auc", "warm", 4),
    ("cold_auc", "cold", 4),
    ("logloss", "logloss", 4),
    ("train_samples", "samples", 0),
    ("train_seconds", "train s", 1),
    ("mix", "α/w", 2),
)
"""(attribute, header, digits): samples and seconds are per update (shared adapters counted
for each strategy using them), α/w the mean ensemble α or long merge weight, ± s.e. the standard
error of the AUC over the averaged periods (their spread, not the test samples')."""


def _summary_cells(summary: StrategySummary) -> list[str]:
    cells = []
    for attr, _, digits in _SUMMARY_COLUMNS:
        value = getattr(summary, attr)
        cells.append(str(value) if digits is None else format_metric(value, digits))
    return cells


def summary_markdown(summaries: Sequence[StrategySummary], title: str = "") -> str:
    """The summary as a Markdown table.

    >>> s = StrategySummary("short", 2, 0.7, 0.6, 0.71, float("nan"), 90, 3.5, float("nan"))
    >>> print(summary_markdown([s]).splitlines()[2])
    | short | 2 | 0.7000 | n/a | 0.7100 | n/a | 0.6000 | 90 | 3.5 | n/a |
    """
    header = [label for _, label, _ in _SUMMARY_COLUMNS]
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(_summary_cells(s)) + " |" for s in summaries)
    return "\n".join(lines) + "\n"


def render_summary_table(summaries: Sequence[StrategySummary], title: str = "") -> Table:
    """The summary as a ``rich`` table (print it with ``rich.console.Console().print``)."""
    table = Table(title=title or None, caption="means over the averaged test periods")
    for attr, label, _ in _SUMMARY_COLUMNS:
        if attr == "strategy":
            table.add_column(label, justify="left", no_wrap=True)
        else:
            table.add_column(label, justify="right")
    best = max((s.auc for s in summaries if math.isfinite(s.auc)), default=NAN)
    for s in summaries:
        cells = _summary_cells(s)
        if math.isfinite(best) and s.auc == best:
            cells[2] = f"[bold green]{cells[2]}[/]"
        table.add_row(*cells)
    return table


def write_period_csv(rows: Sequence[PeriodResult], path: Path) -> Path:
    """Write the per-period rows (sorted by period, then strategy order) to ``path``."""
    order = {name: i for i, name in enumerate(STRATEGIES)}
    ordered = sorted(rows, key=lambda r: (r.period, order.get(r.strategy, 99), r.strategy))
    names = [f.name for f in fields(PeriodResult)]
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in ordered:
            writer.writerow(row.to_row())
    tmp.replace(path)
    return path


def read_period_csv(path: Path) -> list[PeriodResult]:
    """Read rows written by :func:`write_period_csv`."""
    with path.open(newline="") as handle:
        return [PeriodResult.from_row(row) for row in csv.DictReader(handle)]


def write_summary(summaries: Sequence[StrategySummary], out_dir: Path, title: str = "") -> None:
    """Write ``summary.csv`` and ``summary.md`` into ``out_dir``."""
    names = [f.name for f in fields(StrategySummary)]
    with (out_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for s in summaries:
            writer.writerow(asdict(s))
    (out_dir / "summary.md").write_text(summary_markdown(summaries, title))


class _LineStyle(TypedDict):
    linestyle: str
    linewidth: float
    marker: str
    markersize: float
    label: str


def _line_style(name: str) -> _LineStyle:
    """LSAT thick and solid, the other LoRA strategies solid, non-LLM baselines dotted.

    >>> _line_style("lsat-en")["linewidth"], _line_style("mf")["linestyle"]
    (2.2, ':')
    """
    if name.startswith("lsat"):
        return {"linestyle": "-", "linewidth": 2.2, "marker": "o", "markersize": 4, "label": name}
    if name in BASELINE_STRATEGIES:
        return {"linestyle": ":", "linewidth": 1.2, "marker": ".", "markersize": 4, "label": name}
    return {"linestyle": "-", "linewidth": 1.2, "marker": "o", "markersize": 3, "label": name}


def plot_auc(rows: Sequence[PeriodResult], n_periods: int, path: Path, title: str = "") -> Path:
    """A PNG of AUC per test period, one line per strategy; the averaged half is shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5))
    colours = matplotlib.color_sequences["tab20"]
    try:
        half = second_half_periods(n_periods)
        if half:
            ax.axvspan(half[0] - 0.5, half[-1] + 0.5, color="0.93", label="averaged")
        strategies = [s for s in STRATEGIES if any(r.strategy == s for r in rows)]
        for name in strategies:
            points = sorted(
                (r.period, r.auc) for r in rows if r.strategy == name and math.isfinite(r.auc)
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, **_line_style(name), color=colours[STRATEGIES.index(name) % 20])
        ax.set_xlabel("test period")
        ax.set_ylabel("AUC")
        ax.set_xticks(range(2, n_periods + 1))
        ax.set_title(title or "AUC per period")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
