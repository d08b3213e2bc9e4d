"""The pure parts of bench_recipes.py: the recipes, their grids, the table and the plot.

No model is loaded here. A recipe's name says how it differs from the baseline recipe; rows are
scored with quality_report's AUC ± standard error, on the whole test set and its warm and cold
slices.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from quality_report import Row, Split, baseline_rows, row_aucs

from lsat.adapters.model.training import top_layers
from lsat.core.evaluation import auc

__all__ = [
    "FACTORS",
    "MODULES",
    "Recipe",
    "RecipeResult",
    "build_grid",
    "parse_recipe",
    "picked_by_validation",
    "plot",
    "recipe_row",
    "reference_rows",
    "render",
]

MODULES = {  # attention q/v (the paper's), all of attention, q/v + the MLP
    "qv": ("q_proj", "v_proj"),
    "qkvo": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qv_mlp": ("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"),
}


@dataclass(frozen=True)
class Recipe:
    """One LoRA training recipe; ``layers`` is the number of top layers adapted, or "all"."""

    lr: float = 1e-3
    epochs: int = 1
    r: int = 8
    modules: str = "qv"
    layers: str = "8"

    def __post_init__(self) -> None:
        if self.modules not in MODULES:
            raise ValueError(f"modules must be one of {sorted(MODULES)}, got {self.modules!r}")
        if self.layers != "all" and not (self.layers.isdigit() and int(self.layers) > 0):
            raise ValueError(f"layers must be a positive count or 'all', got {self.layers!r}")

    def parts(self) -> dict[str, str]:
        """Each factor as a short label, e.g. ``{"lr": "lr 0.001", "layers": "top 8"}``."""
        return {
            "lr": f"lr {self.lr:g}",
            "epochs": f"{self.epochs} ep" + (" + early stop" if self.epochs > 1 else ""),
            "r": f"r {self.r}",
            "modules": self.modules,
            "layers": "all layers" if self.layers == "all" else f"top {self.layers}",
        }

    def name(self, baseline: Recipe) -> str:
        """The factors that differ from ``baseline``, or the whole recipe for the baseline."""
        mine, theirs = self.parts(), baseline.parts()
        changed = [label for key, label in mine.items() if label != theirs[key]]
        return ", ".join(changed) if changed else "baseline: " + ", ".join(mine.values())

    def for_model(self, total_layers: int) -> Recipe:
        """The same recipe with a top-N count at or above the model's depth spelled "all"."""
        if self.layers != "all" and int(self.layers) >= total_layers:
            return replace(self, layers="all")
        return self

    def layer_indices(self, total_layers: int) -> tuple[int, ...] | None:
        return None if self.layers == "all" else top_layers(int(self.layers), total_layers)


FACTORS = tuple(f.name for f in fields(Recipe))


def parse_recipe(pairs: list[str]) -> Recipe:
    """``["lr=3e-4", "layers=all"]`` over the default recipe."""
    types = {f.name: type(getattr(Recipe(), f.name)) for f in fields(Recipe)}
    values: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in types:
            raise ValueError(f"unknown recipe factor {key!r}; factors are {', '.join(FACTORS)}")
        values[key] = types[key](value)
    return Recipe(**values)  # type: ignore[arg-type]  # each value converted by its field's type


def build_grid(
    values: dict[str, list], baseline: Recipe, kind: str, total_layers: int
) -> list[Recipe]:
    """``ofat``: the baseline, then each factor's other values with the rest at the baseline;
    ``full``: the Cartesian product. Recipes equal on this model (top N >= depth) appear once."""
    if kind == "full":
        recipes = [Recipe(*combo) for combo in itertools.product(*(values[f] for f in FACTORS))]
    else:
        recipes = [baseline]
        for factor in FACTORS:
            recipes += [replace(baseline, **{factor: v}) for v in values[factor]]
    unique = dict.fromkeys(r.for_model(total_layers) for r in recipes)
    return list(unique)


@dataclass
class RecipeResult:
    """What one recipe's training and scoring gave (cached as JSON)."""

    val: list[float]
    test: list[float]
    train_seconds: float
    score_seconds: float
    steps: int
    best_step: int
    samples_seen: int
    steps_per_epoch: int
    early_stopping: bool

    @property
    def epochs_run(self) -> str:
        run = self.steps / self.steps_per_epoch
        if not self.early_stopping:
            return f"{run:.1f}"
        return f"{run:.1f} (best {self.best_step / self.steps_per_epoch:.1f})"


def reference_rows(split: Split) -> list[Row]:
    """The best single rate and the best rate stack on the test samples (picked on test, so an
    upper bound for each kind)."""
    rows, _ = baseline_rows(split)
    picked = []
    for stack in (False, True):
        kind = [r for r in rows if r.name.startswith("rate stack") == stack]
        best = max(kind, key=lambda r: row_aucs(split, r)["all"][0])
        name = best.name.removeprefix("rate stack: ")
        label = f"best rate stack: {name}" if stack else f"best single rate: {name}"
        picked.append(Row(label, "baseline", best.test_scores, best.seconds))
    return picked


def _seconds(value: float) -> str:
    return f"{value:.{0 if value >= 10 else 1}f}"


def _cell(value: tuple[float, float]) -> str:
    return "n/a" if math.isnan(value[0]) else f"{value[0]:.3f} ± {value[1]:.3f}"


def render(
    split: Split, refs: list[Row], done: list[tuple[Recipe, RecipeResult]], base: Recipe
) -> list[str]:
    """Markdown table lines: references, then one numbered row per finished recipe."""
    n_cold = int(split.cold.sum())
    y_val = split.labels("val")
    lines = [
        f"| # | recipe | test AUC ± s.e. | warm ({len(split.test) - n_cold}) | cold ({n_cold}) "
        "| val AUC | epochs run | train s | score s | train samples/s |",
        "|---" * 10 + "|",
    ]
    for row in refs:
        cells = row_aucs(split, row)
        lines.append(
            f"| – | {row.name} | {_cell(cells['all'])} | {_cell(cells['warm'])} "
            f"| {_cell(cells['cold'])} | | | {row.seconds:.2f} | | |"
        )
    for number, (recipe, result) in enumerate(done, 1):
        cells = row_aucs(split, recipe_row(recipe, result, base))
        lines.append(
            f"| {number} | {recipe.name(base)} | {_cell(cells['all'])} | {_cell(cells['warm'])} "
            f"| {_cell(cells['cold'])} | {auc(y_val, result.val):.3f} | {result.epochs_run} "
            f"| {_seconds(result.train_seconds)} | {_seconds(result.score_seconds)} "
            f"| {result.samples_seen / result.train_seconds:.1f} |"
        )
    return lines


def recipe_row(recipe: Recipe, result: RecipeResult, base: Recipe) -> Row:
    seconds = result.train_seconds + result.score_seconds
    return Row(recipe.name(base), "llm", np.array(result.test), seconds)


def plot(split: Split, refs: list[Row], rows: list[Row], path: Path, title: str) -> None:
    """Test AUC ± s.e. against seconds, one numbered point per recipe, the references as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row, style in zip(refs, ("--", ":"), strict=False):
        value = row_aucs(split, row)["all"][0]
        ax.axhline(value, color="grey", linestyle=style, label=f"{row.name} ({value:.3f})")
    for number, row in enumerate(rows, 1):
        value, error = row_aucs(split, row)["all"]
        ax.errorbar(row.seconds, value, yerr=error, fmt="o", color="#1f77b4", capsize=3)
        ax.annotate(str(number), (row.seconds, value), textcoords="offset points", xytext=(5, 4))
    if rows and max(r.seconds for r in rows) > 5 * min(r.seconds for r in rows):
        ax.set_xscale("log")
    ax.set_xlabel("seconds (training + scoring validation and test)")
    ax.set_ylabel("test AUC (± standard error)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def picked_by_validation(
    split: Split, done: list[tuple[Recipe, RecipeResult]], base: Recipe
) -> list[str]:
    """Markdown lines naming the recipe with the best validation AUC and its test AUC."""
    if not done:
        return []
    y_val = split.labels("val")
    index = max(range(len(done)), key=lambda i: auc(y_val, done[i][1].val))
    recipe, result = done[index]
    value = row_aucs(split, recipe_row(recipe, result, base))["all"]
    return [
        f"Picked by validation AUC (the honest choice; the test column is for reading, not "
        f"choosing): #{index + 1} {recipe.name(base)}, test AUC {_cell(value)}.",
        "",
    ]
