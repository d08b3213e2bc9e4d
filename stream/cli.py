"""Subcommands of this subsystem for the ``lsat`` command (see :mod:`lsat.cli`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this subsystem's subcommands (none yet)."""
