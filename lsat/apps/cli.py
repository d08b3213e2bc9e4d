"""The ``lsat`` command: one argparse tree, each subsystem registers its own subcommands.

A subsystem module exposes ``register(subparsers) -> None``; each subcommand sets
``func(args, settings) -> int`` via ``parser.set_defaults(func=...)``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from lsat.core.env_schema import describe_errors
from lsat.core.settings import (
    KafkaSettings,
    ScorerSettings,
    Settings,
    SettingsError,
    StreamSettings,
    TopicNames,
    TrainerSettings,
)

__all__ = ["build_parser", "main"]

SECTIONS = (Settings, KafkaSettings, StreamSettings, TrainerSettings, ScorerSettings, TopicNames)
SECTION_NAMES = frozenset(cls.__name__ for cls in SECTIONS)
"""Settings classes whose validation errors a command-line value can cause (exit status 2)."""

SUBCOMMAND_MODULES = (
    "lsat.apps.adapter_commands",
    "lsat.adapters.experiment.cli",
    "lsat.apps.serve_command",
    "lsat.apps.trainer_command",
    "lsat.apps.orchestrator.up_cli",
    "lsat.apps.stream_commands",
    "lsat.apps.produce_command",
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``lsat`` parser with every subsystem's subcommands."""
    parser = argparse.ArgumentParser(prog="lsat", description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="state folder (caches, artifacts, SQLite); env LSAT_HOME")
    parser.add_argument("--database-url", help="SQLAlchemy URL; env LSAT_DATABASE_URL")
    parser.add_argument("--base-model", help="'smollm2' or a Hugging Face causal LM path/name")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env().with_overrides(
            home=args.home, database_url=args.database_url, base_model=args.base_model
        )
        return int(args.func(args, settings) or 0)
    except SettingsError as exc:
        print(f"lsat: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a command-line value a settings section refuses
        if exc.title not in SECTION_NAMES:
            raise
        print(f"lsat: bad setting: {describe_errors(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
