"""Adapter kinds: the one definition (registry rows, artifact metadata, serving sets, the CLI).

>>> AdapterKind("short") is AdapterKind.SHORT, AdapterKind.SHORT == "short"
(True, True)
>>> ADAPTER_KINDS
('long', 'short', 'merged')
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ADAPTER_KINDS", "AdapterKind"]


class AdapterKind(StrEnum):
    """``long`` (trained on many windows), ``short`` (the latest window), ``merged`` (the two
    combined into one adapter)."""

    LONG = "long"
    SHORT = "short"
    MERGED = "merged"


ADAPTER_KINDS: tuple[str, ...] = tuple(kind.value for kind in AdapterKind)
"""The kinds as plain strings, in order (for ``in`` tests, argparse choices, SQL checks)."""
