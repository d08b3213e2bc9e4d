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
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from bench_data import ROOT, cache_dir, ml100k_folder
from bench_quality import _atomic_write, has_bf16, load_base
from quality_report import Split, make_split, resolve_cut
from recipes_report import (
    FACTORS,
    MODULES,
    Recipe,
    RecipeResult,
    build_grid,
    parse_recipe,
    picked_by_validation,
    plot,
    recipe_row,
    reference_rows,
    render,
)
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lsat.adapters.model.prompts import PROMPT_FORMATS
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig, TrainReport
from lsat.core.evaluation import auc
from lsat.data.collaborative import build_annotated_samples
from lsat.data.loaders import load_dataset

console = Console(stderr=True)
QUICK = {
    "train": 64,
    "val": 32,
    "test": 64,
    "model": "tiny",
    "layers": ["1", "2", "all"],
    "baseline": ["layers=2"],
}
ADAPTER = "recipe"


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
    lines += [
        *header,
        f"Load average (1, 5, 15 min) at this write (the end, once complete): {load}.",
        "",
    ]
    lines += [*render(split, refs, done, args.recipe), ""]
    lines += picked_by_validation(split, done, args.recipe)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(args.out, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    rows = [recipe_row(r, res, args.recipe) for r, res in done]
    figure = f"LoRA recipes on {title}"
    _atomic_write(args.out.with_suffix(".png"), lambda tmp: plot(split, refs, rows, tmp, figure))


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
        "where they stopped and the best checkpoint. Seconds are wall time on this machine; train "
        "samples/s counts the training samples seen per second of training (validation "
        "evaluations included).",
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
