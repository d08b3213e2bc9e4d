"""LoRA recipe search on bench_quality's fixed time-ordered ML-100K split: AUC ± s.e. vs seconds.

Issue 11 item 5. Each recipe (learning rate, epochs, rank, target modules, adapted layers) trains
one adapter on the split's train part and scores its validation and test parts; recipes with more
than one epoch evaluate validation AUC every ``1/--evals-per-epoch`` epoch, stop early after
``--patience`` evaluations without a better one and keep the best weights (a one-epoch recipe,
like the probe's, trains without validation). The default grid varies one factor at a time
around the probe's recipe (r 8, alpha 2r, q/v, top 8 layers, lr 1e-3, 1 epoch); ``--grid full``
takes the Cartesian product (a GPU's job). The table starts with the best single rate and the best
rate stack on the same test samples (bench/quality_report.py). Every recipe's scores are cached
under ``cache_dir()/bench_recipes`` keyed by split and recipe, and the results are rewritten after
each one (marked partial until the last), so a rerun resumes.

    python bench/bench_recipes.py [--train 2000 --val 300 --test 600 --cut 30000]
    python bench/bench_recipes.py --device cuda --batch-size 64 --grid full
    python bench/bench_recipes.py --quick        # tiny random Llama, tiny sizes
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from bench_data import ROOT, cache_dir, ml100k_folder
from bench_quality import _atomic_write, has_bf16, load_base
from quality_report import Row, Split, baseline_rows, make_split, resolve_cut, row_aucs
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lsat.adapters.model.prompts import PROMPT_FORMATS
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig, TrainReport, top_layers
from lsat.core.evaluation import auc
from lsat.data.collaborative import build_annotated_samples
from lsat.data.loaders import load_dataset

console = Console(stderr=True)
MODULES = {
    "qv": ("q_proj", "v_proj"),
    "qkvo": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qv_mlp": ("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"),
}
QUICK = {
    "train": 64,
    "val": 32,
    "test": 64,
    "model": "tiny",
    "layers": ["1", "2", "all"],
    "baseline": ["layers=2"],
}
ADAPTER = "recipe"


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="ML-100K folder")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--cut", type=float, default=30000, help="sample index, or a fraction")
    parser.add_argument("--grid", choices=("ofat", "full"), default="ofat")
    parser.add_argument("--lr", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--rank", type=int, nargs="+", default=[4, 8, 16], dest="r")
    parser.add_argument("--modules", nargs="+", choices=sorted(MODULES), default=list(MODULES))
    parser.add_argument("--layers", nargs="+", default=["4", "8", "all"], help="top N, or all")
    parser.add_argument(
        "--baseline", nargs="*", default=[], metavar="FACTOR=VALUE", help="e.g. lr=1e-3 layers=8"
    )
    parser.add_argument("--patience", type=int, default=1, help="evaluations without a better one")
    parser.add_argument("--evals-per-epoch", type=int, default=2)
    parser.add_argument("--prompt", choices=PROMPT_FORMATS, default="tallrec")
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, tiny random Llama")
    args = parser.parse_args(argv)
    if args.quick:
        defaults = parser.parse_args([])
        for key, value in QUICK.items():
            if getattr(args, key) == getattr(defaults, key):
                setattr(args, key, value)
    if args.out is None:
        quick = ROOT / "runs" / "bench_recipes_quick" / "recipes.md"
        args.out = quick if args.quick else ROOT / "bench" / "results" / "recipes.md"
    try:
        args.recipe = parse_recipe(args.baseline)
        for layers in args.layers:
            replace(args.recipe, layers=layers)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def cache_key(args: argparse.Namespace, split: Split, recipe: Recipe, bf16: bool) -> str:
    """What decides a recipe's scores and seconds (the resume cache is keyed by it)."""
    setup = {k: str(getattr(args, k)) for k in ("dataset", "model", "batch_size", "seed")}
    setup |= {k: str(getattr(args, k)) for k in ("device", "patience", "evals_per_epoch")}
    sizes = [len(split.train), len(split.val), len(split.test), split.cut]
    blob = json.dumps(
        setup | {"split": sizes, "prompt": args.prompt, "bf16": bf16} | asdict(recipe)
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_config(
    args: argparse.Namespace, recipe: Recipe, total: int, n_train: int, bf16: bool
) -> TrainConfig:
    """The TrainConfig of ``recipe`` (alpha = 2r keeps LoRA's scale at the probe's 2)."""
    early = recipe.epochs > 1
    per_epoch = math.ceil(n_train / args.batch_size)
    return TrainConfig(
        r=recipe.r,
        lora_alpha=2 * recipe.r,
        target_modules=MODULES[recipe.modules],
        layers=recipe.layer_indices(total),
        lr=recipe.lr,
        epochs=recipe.epochs,
        batch_size=args.batch_size,
        eval_every_steps=max(1, math.ceil(per_epoch / args.evals_per_epoch)) if early else None,
        patience=args.patience if early else None,
        seed=args.seed,
        bf16_autocast=bf16,
    )


def run_recipe(
    args: argparse.Namespace, rec: LoraRecommender, split: Split, recipe: Recipe, bf16: bool
) -> tuple[RecipeResult, bool]:
    """Train and score ``recipe``, or read its cached result; ``(result, resumed)``."""
    path = cache_dir() / "bench_recipes" / f"{cache_key(args, split, recipe, bf16)}.json"
    if path.exists():
        return RecipeResult(**json.loads(path.read_text())), True
    total = rec.base.model.config.num_hidden_layers
    config = train_config(args, recipe, total, len(split.train), bf16)
    early = config.patience is not None
    rec.cache.clear()  # every recipe pays for its own lower-layer cache: honest seconds
    started = time.perf_counter()
    report: TrainReport = rec.train_adapter(
        ADAPTER, split.train, split.val if early else [], config=config
    )
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = rec.score(ADAPTER, split.val + split.test)
    score_seconds = time.perf_counter() - started
    rec.delete_adapter(ADAPTER)
    n_val = len(split.val)
    result = RecipeResult(
        val=scores[:n_val].tolist(),
        test=scores[n_val:].tolist(),
        train_seconds=train_seconds,
        score_seconds=score_seconds,
        steps=report.steps,
        best_step=report.best_step if early else report.steps,
        samples_seen=report.samples_seen,
        steps_per_epoch=math.ceil(len(split.train) / args.batch_size),
        early_stopping=early,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(asdict(result))))
    return result, False


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


def _cell(value: tuple[float, float]) -> str:
    return "n/a" if math.isnan(value[0]) else f"{value[0]:.3f} ± {value[1]:.3f}"


def render(split: Split, refs: list[Row], done: list[tuple[Recipe, RecipeResult]], base: Recipe):
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
            f"| {result.train_seconds:.0f} | {result.score_seconds:.0f} "
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
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def machine(args: argparse.Namespace) -> str:
    """CPU model and count, and the accelerator when the run used one."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [x for x in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in x]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    if args.device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(torch.device(args.device))}"
    return text


def write_results(args, split, refs, done, recipes, header: list[str]) -> None:
    title = f"ML-100K, {len(split.train)} train / {len(split.val)} val / {len(split.test)} test"
    lines = [f"# LoRA recipe search: {title}, time-ordered (bench/bench_recipes.py)", ""]
    if len(done) < len(recipes):
        lines += [f"**Partial results: {len(done)} of {len(recipes)} recipes done.**", ""]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines += [*header, f"Load average (1, 5, 15 min) now: {load}.", ""]
    lines += [*render(split, refs, done, args.recipe), ""]
    if done:
        y_val = split.labels("val")
        best_index = max(range(len(done)), key=lambda i: auc(y_val, done[i][1].val))
        recipe, result = done[best_index]
        value = row_aucs(split, recipe_row(recipe, result, args.recipe))["all"]
        lines += [
            f"Picked by validation AUC (the honest choice; the test column is for reading, not "
            f"choosing): #{best_index + 1} {recipe.name(args.recipe)}, test AUC {_cell(value)}.",
            "",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(args.out, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    rows = [recipe_row(r, res, args.recipe) for r, res in done]
    plot(split, refs, rows, args.out.with_suffix(".png"), f"LoRA recipes on {title}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset or ml100k_folder())
    samples = build_annotated_samples(dataset.interactions)
    cut = resolve_cut(args.cut, len(samples), args.train, args.val + args.test)
    split = make_split(samples, args.train, args.val, args.test, cut)
    refs = reference_rows(split)
    base = load_base(args)
    total = base.model.config.num_hidden_layers
    args.recipe = args.recipe.for_model(total)
    values = {f: getattr(args, f) for f in FACTORS}
    recipes = build_grid(values, args.recipe, args.grid, total)
    bf16 = has_bf16(args.device)
    header = [
        f"Samples {cut - args.train}..{cut + args.val + args.test - 1} of {len(samples)} (cut at "
        f"{cut}); the references use every interaction before each sample (prequential). "
        f"{args.model} ({total} layers), prompt {args.prompt}, LoRA alpha = 2r, batch "
        f"{args.batch_size}, seed {args.seed}, bf16 autocast {'on' if bf16 else 'off'}, "
        f"{args.threads} threads, device {args.device}. Recipes with more than one epoch stop "
        f"after {args.patience} validation evaluation(s) without a better AUC, evaluating "
        f"{args.evals_per_epoch} times per epoch, and keep the best weights; epochs run shows "
        "where they stopped and the best checkpoint. Seconds are wall time on this machine.",
        "",
        f"Machine: {machine(args)}. Load average (1, 5, 15 min) at the start: {load_before}.",
        "",
        "Run: `python bench/bench_recipes.py " + " ".join(shlex.quote(a) for a in argv) + "`",
        "",
    ]
    rec = LoraRecommender(
        base,
        {k: v.title for k, v in dataset.items.items()},
        prompt_format=args.prompt,
        train_config=TrainConfig(bf16_autocast=bf16),
        batch_size=max(16, args.batch_size),
        progress=False,
        device=args.device,
    )
    done: list[tuple[Recipe, RecipeResult]] = []
    write_results(args, split, refs, done, recipes, header)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("recipes", total=len(recipes))
        for recipe in recipes:
            progress.update(task, description=recipe.name(args.recipe))
            result, resumed = run_recipe(args, rec, split, recipe, bf16)
            done.append((recipe, result))
            write_results(args, split, refs, done, recipes, header)
            value = auc(split.labels("test"), result.test)
            how = "resumed from cache" if resumed else f"{result.train_seconds:.0f} s training"
            console.log(f"{recipe.name(args.recipe)}: test AUC {value:.3f} ({how})")
            progress.advance(task)
    print("\n".join(render(split, refs, done, args.recipe)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
