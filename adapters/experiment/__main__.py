"""``python -m lsat.adapters.experiment``: the experiment alone, without the streaming CLI's
imports.

Same flags as ``lsat experiment`` (useful on a machine that has torch/transformers/peft but not
the Kafka/database stack, such as a GPU box).
"""

from __future__ import annotations

import argparse
import sys

from lsat.adapters.experiment.cli import add_arguments, run_command
from lsat.core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Parse the experiment flags and run it with settings from the environment."""
    parser = argparse.ArgumentParser(prog="python -m lsat.adapters.experiment")
    add_arguments(parser)
    return run_command(parser.parse_args(argv), Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
