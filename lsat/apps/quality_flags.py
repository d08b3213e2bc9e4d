"""Command-line flags of the trainer's quality options, shared by ``lsat trainer`` and ``lsat up``.

``lsat up`` passes the options on to its trainer children as the same flags
(:func:`quality_argv`), so both commands read them one way.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_quality_arguments(parser)
>>> args = parser.parse_args(["--prompt-format", "chat", "--patience", "2", "--no-bf16"])
>>> options = options_from_args(args)
>>> options.prompt_format, options.patience, options.bf16, options.short_init
('chat', 2, False, 'scratch')
>>> quality_argv(options)[:4]
['--prompt-format', 'chat', '--item-noun', 'movie']
"""

from __future__ import annotations

import argparse

from lsat.adapters.model.prompts import PROMPT_FORMATS
from lsat.adapters.trainer.options import SHORT_INITS, QualityOptions

__all__ = ["add_quality_arguments", "options_from_args", "quality_argv"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def add_quality_arguments(
    parser: argparse.ArgumentParser, defaults: QualityOptions | None = None
) -> None:
    """Add ``--prompt-format``, ``--item-noun``, ``--short-init``, ``--patience``,
    ``--bf16/--no-bf16`` and ``--combiner-windows`` (defaults from ``defaults``)."""
    d = defaults or QualityOptions()
    group = parser.add_argument_group("quality options")
    group.add_argument(
        "--prompt-format",
        choices=PROMPT_FORMATS,
        default=d.prompt_format,
        help=f"prompt new adapters are trained with, recorded in their metadata "
        f"({d.prompt_format}; *_hints add the item's and user's like counts, "
        "*_hints_recent also the likes among the listed history)",
    )
    group.add_argument(
        "--item-noun",
        default=d.item_noun,
        help=f"what the prompt calls an item ({d.item_noun})",
    )
    group.add_argument(
        "--short-init",
        choices=SHORT_INITS,
        default=d.short_init,
        help=f"start each short adapter fresh or from the serving long ({d.short_init})",
    )
    group.add_argument(
        "--patience",
        type=_positive,
        default=d.patience,
        help="stop training after N epochs without a better validation AUC (default: run all)",
    )
    group.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=d.bf16,
        help="bf16 autocast for training (default: where the hardware computes bf16 natively)",
    )
    group.add_argument(
        "--combiner-windows",
        type=_positive,
        default=d.combiner_windows,
        help=f"recent windows the hybrid combiner and the rate stack are fitted on "
        f"({d.combiner_windows})",
    )


def options_from_args(args: argparse.Namespace) -> QualityOptions:
    """The options the parsed flags describe."""
    return QualityOptions(
        prompt_format=args.prompt_format,
        item_noun=args.item_noun,
        short_init=args.short_init,
        patience=args.patience,
        bf16=args.bf16,
        combiner_windows=args.combiner_windows,
    )


def quality_argv(options: QualityOptions) -> list[str]:
    """The flags that give a child process ``options``."""
    argv = [
        "--prompt-format",
        options.prompt_format,
        "--item-noun",
        options.item_noun,
        "--short-init",
        options.short_init,
        "--combiner-windows",
        str(options.combiner_windows),
    ]
    if options.patience is not None:
        argv += ["--patience", str(options.patience)]
    if options.bf16 is not None:
        argv.append("--bf16" if options.bf16 else "--no-bf16")
    return argv
