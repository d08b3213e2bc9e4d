"""``lsat up``: the whole loop (broker, worker, trainer, scorer, replay) with a live table."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from lsat.core.settings import Settings

__all__ = ["register"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from lsat.apps.orchestrator.up import UpOptions, UpRun
    from lsat.apps.quality_flags import options_from_args

    for noisy in ("kafka", "stream", "aiokafka"):  # the children log to files; keep the view clean
        logging.getLogger(noisy).setLevel(logging.WARNING)

    trainer = settings.trainer
    changes = {"epochs": args.epochs, "max_samples_per_window": args.train_samples}
    trainer = dataclasses.replace(trainer, **{k: v for k, v in changes.items() if v is not None})
    settings = dataclasses.replace(settings, trainer=trainer)
    options = UpOptions(
        dataset=args.dataset,
        windows=args.windows,
        window_size=args.window_size,
        long_windows=args.long_windows,
        speed=args.speed,
        free_ports=args.free_ports,
        scorer_port=args.scorer_port,
        quality=options_from_args(argparse.Namespace(**{**vars(args), "item_noun": "movie"})),
        item_noun=args.item_noun,
    )
    return UpRun(settings, options).run()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lsat up``."""
    from lsat.apps.quality_flags import add_quality_arguments
    from lsat.stream.replay import parse_speed

    defaults = __import__("lsat.apps.orchestrator.up", fromlist=["UpOptions"]).UpOptions()
    p = subparsers.add_parser(
        "up",
        help="run the whole loop on a replayed dataset with a live table (stops after N windows)",
        description="Start the embedded broker (unless LSAT_KAFKA_BOOTSTRAP is set), the worker, "
        "the scorer and a replay of DATASET (default: MovieLens-100K, downloaded into the cache); "
        "train the long adapter on the first windows, then retrain the short adapter on each of "
        "the next N windows and show the test-then-train AUCs. Ctrl-C stops everything; a "
        "crashed process stops the run (exit 1, its log tail printed).",
    )
    p.add_argument("--dataset", type=Path, help="dataset folder (default: MovieLens-100K)")
    p.add_argument(
        "--windows",
        type=_positive,
        default=defaults.windows,
        help=f"short-adapter windows to retrain before stopping ({defaults.windows})",
    )
    p.add_argument(
        "--window-size",
        type=_positive,
        default=defaults.window_size,
        help=f"samples per window ({defaults.window_size})",
    )
    p.add_argument(
        "--long-windows",
        type=_non_negative,
        default=defaults.long_windows,
        help=f"first windows the long adapter trains on ({defaults.long_windows})",
    )
    p.add_argument(
        "--speed",
        type=parse_speed,
        default=0.0,
        help="replay pace, multiple of real time by event time ('max' = no pacing)",
    )
    p.add_argument("--epochs", type=_positive, help="training epochs per adapter")
    p.add_argument("--train-samples", type=_positive, help="max training samples per window")
    p.add_argument(
        "--scorer-port", type=int, help="scorer port (default: LSAT_SCORER_PORT, else 8080)"
    )
    p.add_argument(
        "--free-ports",
        action="store_true",
        help="bind every service to a free port instead of the configured ones",
    )
    add_quality_arguments(p, defaults.quality)
    p.set_defaults(func=_up, item_noun=None)  # None: the dataset's noun (MovieLens: movie)
