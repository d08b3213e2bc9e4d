"""``lsat experiment``: reproduce the LSAT paper's incremental-learning comparison.

Example (the paper's setting, hours on a CPU)::

    lsat experiment --dataset ml-100k --periods 20 --samples-per-period 300 \\
        --out runs/ml100k --lora-layers 8

Rerunning the same command continues an interrupted run; another configuration with the
same ``--out`` is refused. With no flags it runs a small smoke experiment (a few minutes).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lsat.adapters.experiment.strategies import STRATEGIES, ExperimentError, describe_plan
from lsat.adapters.model.prompts import PROMPT_FORMATS
from lsat.core.settings import Settings
from lsat.data.errors import LsatDataError

if TYPE_CHECKING:  # the runner imports torch; keep ``lsat --help`` fast
    from lsat.adapters.experiment.config import ExperimentConfig

__all__ = ["add_arguments", "config_from_args", "register", "resolve_device", "run_command"]


def _float_list(text: str) -> tuple[float, ...]:
    """Parse ``0,0.5,1`` into a tuple of floats (argparse type).

    >>> _float_list("0, 0.5,1")
    (0.0, 0.5, 1.0)
    """
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma list of numbers: {text!r}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The experiment's flags (shared with tests that build their own parser)."""
    data = parser.add_argument_group("data and protocol")
    data.add_argument("--dataset", default="ml-100k", help="dataset folder, or 'ml-100k' to fetch")
    data.add_argument("--periods", type=int, default=4, help="number of periods P (paper: 20)")
    data.add_argument(
        "--samples-per-period", type=int, default=40, help="samples per period K (keeps last P×K)"
    )
    data.add_argument(
        "--split", choices=("count", "time"), default="count", help="equal counts or time spans"
    )
    data.add_argument("--like-threshold", type=float, default=3.0, help="rating > this is a like")
    data.add_argument("--validation-fraction", type=float, default=0.1)
    data.add_argument(
        "--strategies",
        default="all",
        help="comma list or 'all': " + ", ".join(STRATEGIES),
    )
    data.add_argument(
        "--long-periods", type=int, default=None, help="m: periods the long adapter sees (P/2)"
    )
    data.add_argument(
        "--max-train-samples",
        type=int,
        default=None,
        help="cap any adapter's training set to its most recent samples (full/long grow)",
    )
    data.add_argument(
        "--prompt-format",
        choices=PROMPT_FORMATS,
        default="tallrec",
        help="prompt the adapters train and score with (hints: collaborative counts as text)",
    )
    data.add_argument(
        "--item-noun", default=None, help="what the prompt calls an item (default: the dataset's)"
    )
    data.add_argument(
        "--hybrid-periods",
        type=int,
        default=3,
        help="earlier test periods whose out-of-sample scores the hybrid is fitted on",
    )
    train = parser.add_argument_group("LoRA training (r=8, alpha=16, dropout 0.05, q/v)")
    train.add_argument("--epochs", type=int, default=1)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--train-batch-size", type=int, default=8)
    train.add_argument("--score-batch-size", type=int, default=16)
    train.add_argument(
        "--lora-layers", type=int, default=None, help="adapt only the top N layers (default all)"
    )
    train.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: where the device computes bf16 natively: avx512_bf16/AMX, "
        "CUDA; emulated bf16 on other CPUs is far slower than fp32)",
    )
    train.add_argument("--patience", type=int, default=None, help="early-stopping evaluations")
    train.add_argument("--eval-every-steps", type=int, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--alpha-grid", type=_float_list, default=None, help="LSAT-EN α candidates (0,0.1,…,1)"
    )
    train.add_argument(
        "--merge-grid", type=_float_list, default=None, help="LSAT-TA long weights (.25,.5,.75)"
    )
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, default=Path("runs/experiment"), help="output folder")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (1 helps on a busy CPU)"
    )
    run.add_argument(
        "--device",
        default="cpu",
        help="torch device for the model: cpu (default), cuda, cuda:1, or auto (cuda if present)",
    )
    run.add_argument("--plan", action="store_true", help="print which adapters train when; exit")


def resolve_device(name: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is present, else ``cpu``; other names pass through."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def config_from_args(args: argparse.Namespace, settings: Settings) -> ExperimentConfig:
    """Build an :class:`~lsat.adapters.experiment.config.ExperimentConfig` from parsed flags.

    ``--bf16`` unset resolves by the capability of ``--device``
    (:func:`~lsat.adapters.model.precision.resolve_bf16`).
    """
    from lsat.adapters.experiment.config import ExperimentConfig
    from lsat.adapters.model.precision import resolve_bf16

    extra = {}
    if args.alpha_grid is not None:
        extra["alpha_grid"] = args.alpha_grid
    if args.merge_grid is not None:
        extra["merge_grid"] = args.merge_grid
    return ExperimentConfig(
        dataset=str(args.dataset),
        periods=args.periods,
        samples_per_period=args.samples_per_period,
        split=args.split,
        strategies=args.strategies,
        long_periods=args.long_periods,
        max_train_samples=args.max_train_samples,
        like_threshold=args.like_threshold,
        validation_fraction=args.validation_fraction,
        base_model=settings.base_model,
        seed=args.seed,
        epochs=args.epochs,
        lr=args.lr,
        train_batch_size=args.train_batch_size,
        score_batch_size=args.score_batch_size,
        lora_layers=args.lora_layers,
        bf16=resolve_bf16(args.bf16, resolve_device(args.device)),
        patience=args.patience,
        eval_every_steps=args.eval_every_steps,
        prompt_format=args.prompt_format,
        item_noun=args.item_noun,
        hybrid_periods=args.hybrid_periods,
        **extra,
    )


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """``lsat experiment``: returns 0 on success, 2 on a bad configuration."""
    from rich.console import Console

    console = Console(stderr=True)
    try:
        config = config_from_args(args, settings)
        if args.plan:
            for line in describe_plan(config.periods, config.m, config.strategies):
                console.print(line)
            return 0
        from lsat.adapters.experiment.runner import run_experiment
        from lsat.adapters.model.base_model import load_base_model

        if args.threads:
            import torch

            torch.set_num_threads(args.threads)

        device = resolve_device(args.device)
        run_experiment(
            config,
            args.out,
            device=device,
            base=lambda: load_base_model(config.base_model, cache_dir=settings.cache_dir),
            cache_dir=settings.cache_dir,
            console=console,
            progress=not args.no_progress,
        )
    except (ExperimentError, LsatDataError) as exc:
        console.print(f"[red]lsat experiment: {exc}[/]")
        return 2
    console.print(f"results in {args.out} (periods.csv, summary.md, summary.csv, auc.png)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lsat experiment``."""
    parser = subparsers.add_parser(
        "experiment",
        help="reproduce the LSAT paper's incremental-learning experiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run_command)
