"""The pure parts of bench_quality.py: the time-ordered split, the non-LLM rows, the hybrid rows,
the table and the plot. No model is loaded here, so tests run all of it in seconds.

Every row is a name, its test-set scores and the seconds it cost; AUC ± standard error
(Hanley–McNeil) is computed for the whole test set and for its warm and cold slices (cold: the
target item had at most ``COLD_MAX_RATINGS`` earlier ratings, counted prequentially).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsat.adapters.model.hybrid import fit_combiner, fit_hybrid, logit
from lsat.core.evaluation import auc, auc_standard_error
from lsat.data.collaborative import FEATURE_COLUMNS, feature_columns
from lsat.data.types import Sample

__all__ = [
    "COLD_MAX_RATINGS",
    "RATES",
    "LlmScores",
    "Row",
    "Split",
    "baseline_rows",
    "cut_sensitivity",
    "hybrid_rows",
    "make_split",
    "plot_rows",
    "render_table",
    "resolve_cut",
]

COLD_MAX_RATINGS = 5
RATES = ("logit_user_rate", "logit_item_rate", "logit_history_rate")
"""The probe's three rates: user, item, and the sample's own history."""


@dataclass
class Split:
    """Train / validation / test samples (consecutive in time) and their rate features."""

    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    cut: int
    columns: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part in ("train", "val", "test"):
            self.columns[part] = feature_columns(getattr(self, part))

    def labels(self, part: str) -> np.ndarray:
        return np.array([s.label for s in getattr(self, part)], dtype=int)

    @property
    def cold(self) -> np.ndarray:
        """Test samples whose item had at most COLD_MAX_RATINGS earlier ratings."""
        return np.array([s.collaborative.item_count <= COLD_MAX_RATINGS for s in self.test])


@dataclass
class Row:
    """One line of the table: test scores (any monotone score) and the seconds it cost."""

    name: str
    group: str  # "baseline", "llm" or "hybrid"
    test_scores: np.ndarray
    seconds: float
    note: str = ""


@dataclass
class LlmScores:
    """One LLM variant's P(like) on validation and test, and its train + scoring seconds."""

    val: np.ndarray
    test: np.ndarray
    seconds: float


def resolve_cut(cut: float, n_samples: int, n_train: int, n_after: int) -> int:
    """The sample index of the cut: ``cut`` itself when >= 1, else that fraction of the samples.

    >>> resolve_cut(0.5, 1000, 100, 50), resolve_cut(700, 1000, 100, 50)
    (500, 700)
    >>> resolve_cut(990, 1000, 100, 50)
    Traceback (most recent call last):
    ...
    ValueError: cut 990 leaves 10 samples after it, need 50 (and 100 before it, 990 there)
    """
    index = int(cut) if cut >= 1 else round(cut * n_samples)
    if index < n_train or index + n_after > n_samples:
        raise ValueError(
            f"cut {index} leaves {n_samples - index} samples after it, need {n_after} "
            f"(and {n_train} before it, {index} there)"
        )
    return index


def make_split(samples: Sequence[Sample], n_train: int, n_val: int, n_test: int, cut: int) -> Split:
    """Train on the ``n_train`` samples before ``cut``, validate on the next ``n_val``, test on
    the ``n_test`` after those (``samples`` annotated and in time order)."""
    train = list(samples[cut - n_train : cut])
    val = list(samples[cut : cut + n_val])
    test = list(samples[cut + n_val : cut + n_val + n_test])
    return Split(train, val, test, cut)


def _timed_combiner(split: Split, features: Sequence[str], parts: Sequence[str]):
    started = time.perf_counter()
    columns = {k: np.concatenate([split.columns[p][k] for p in parts]) for k in features}
    labels = np.concatenate([split.labels(p) for p in parts])
    combiner = fit_combiner(columns, labels, features)
    return combiner, time.perf_counter() - started


def baseline_rows(split: Split) -> tuple[list[Row], dict[str, np.ndarray]]:
    """The single rates, the co-like score and the rate stacks; also the stack logits that the
    stacked hybrids build on (``{"val": ..., "test": ...}`` of the train+validation stack)."""
    test = split.columns["test"]
    rows = [
        Row("user like-rate", "baseline", test["logit_user_rate"], 0.0),
        Row("item like-rate", "baseline", test["logit_item_rate"], 0.0),
        Row("history like-rate", "baseline", test["logit_history_rate"], 0.0),
        Row("item-item co-like score", "baseline", test["co_like"], 0.0),
    ]
    for name, features, parts in [
        ("rate stack: 3 rates, fitted on validation", RATES, ("val",)),
        ("rate stack: 3 rates + co-like + item count, on validation", FEATURE_COLUMNS, ("val",)),
        ("rate stack: 3 rates, fitted on train+validation", RATES, ("train", "val")),
        (
            "rate stack: 3 rates + co-like + item count, on train+validation",
            FEATURE_COLUMNS,
            ("train", "val"),
        ),
    ]:
        combiner, seconds = _timed_combiner(split, features, parts)
        rows.append(Row(name, "baseline", combiner.decision(test), seconds))
    full_stack, _ = _timed_combiner(split, FEATURE_COLUMNS, ("train", "val"))
    stack = {part: full_stack.decision(split.columns[part]) for part in ("val", "test")}
    return rows, stack


def hybrid_rows(
    split: Split, llm: Mapping[str, LlmScores], stack: Mapping[str, np.ndarray]
) -> list[Row]:
    """Per LLM variant (and all together): logistic combiners fitted on validation only.

    * ``hybrid``: the 5 collaborative features + the LLM logit(s), with the rates-only fallback.
    * ``stacked hybrid``: the train+validation rate stack's logit + the LLM logit(s), fitted on
      validation with the same fallback (the rates learn from 2,300 samples, the LLM weight
      from the 300 out-of-sample ones).
    """
    rows: list[Row] = []
    y_val = split.labels("val")
    variants = [(name, [name]) for name in llm]
    if len(llm) > 1:
        variants.append(("all prompts", list(llm)))
    for label, names in variants:
        llm_cols = {
            p: {f"llm:{n}": logit(getattr(llm[n], p)) for n in names} for p in ("val", "test")
        }
        cost = sum(llm[n].seconds for n in names)
        for kind, base, extra_cols in [
            ("hybrid", list(FEATURE_COLUMNS), split.columns),
            ("stacked hybrid", ["stack"], {p: {"stack": stack[p]} for p in ("val", "test")}),
        ]:
            started = time.perf_counter()
            val = {**extra_cols["val"], **llm_cols["val"]}
            combiner = fit_hybrid(val, y_val, base=base, extra=list(llm_cols["val"]))
            seconds = time.perf_counter() - started
            scores = combiner.decision({**extra_cols["test"], **llm_cols["test"]})
            rows.append(Row(f"{kind}: {label}", "hybrid", scores, cost + seconds, combiner.note))
    return rows


def _cell(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    positives = int(labels.sum())
    if positives in (0, len(labels)):
        return math.nan, math.nan
    value = auc(labels, scores)
    return value, auc_standard_error(value, positives, len(labels) - positives)


def row_aucs(split: Split, row: Row) -> dict[str, tuple[float, float]]:
    """AUC and standard error on the whole test set, its warm and its cold samples."""
    y, s, cold = split.labels("test"), np.asarray(row.test_scores, dtype=float), split.cold
    return {"all": _cell(y, s), "warm": _cell(y[~cold], s[~cold]), "cold": _cell(y[cold], s[cold])}


def _fmt(cell: tuple[float, float]) -> str:
    return "n/a" if math.isnan(cell[0]) else f"{cell[0]:.3f} ± {cell[1]:.3f}"


def render_table(split: Split, rows: Sequence[Row]) -> list[str]:
    """Markdown table lines: test AUC ± s.e. overall, warm and cold, and seconds."""
    n_cold = int(split.cold.sum())
    lines = [
        f"| row | test AUC ± s.e. | warm ({len(split.test) - n_cold}) | cold ({n_cold}) | s |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = row_aucs(split, row)
        lines.append(
            f"| {row.name} | {_fmt(cells['all'])} | {_fmt(cells['warm'])} | "
            f"{_fmt(cells['cold'])} | {row.seconds:.{0 if row.seconds >= 10 else 2}f} |"
        )
    return lines


def plot_rows(split: Split, rows: Sequence[Row], path: Path, title: str) -> None:
    """Horizontal bars of test AUC with ± standard error, coloured by group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"baseline": "#8c8c8c", "llm": "#1f77b4", "hybrid": "#2ca02c"}
    cells = [row_aucs(split, row)["all"] for row in rows]
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    ax.barh(
        y,
        [c[0] for c in cells],
        xerr=[c[1] for c in cells],
        color=[colours[r.group] for r in rows],
        capsize=3,
    )
    best = max((c[0] for c, r in zip(cells, rows, strict=True) if r.group == "baseline"))
    ax.axvline(best, color="black", linestyle="--", linewidth=1, label=f"best non-LLM {best:.3f}")
    ax.set_yticks(y, [r.name for r in rows], fontsize=8)
    ax.set_xlim(0.45, max(0.8, max(c[0] + c[1] for c in cells) + 0.02))
    ax.set_xlabel("test AUC (± standard error)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cut_sensitivity(
    samples: Sequence[Sample], n_train: int, n_val: int, n_test: int, cuts: Sequence[int]
) -> list[str]:
    """Markdown lines: the non-LLM rows' test AUC at other cuts (how much one split says)."""
    lines: list[str] = []
    for cut in cuts:
        if cut < n_train or cut + n_val + n_test > len(samples):
            continue
        split = make_split(samples, n_train, n_val, n_test, cut)
        rows, _ = baseline_rows(split)
        if not lines:
            names = " | ".join(r.name for r in rows)
            lines = [f"| cut | test users | {names} |", "|---" * (len(rows) + 2) + "|"]
        users = len({s.user_id for s in split.test})
        cells = " | ".join(f"{row_aucs(split, r)['all'][0]:.3f}" for r in rows)
        lines.append(f"| {cut} | {users} | {cells} |")
    return lines
