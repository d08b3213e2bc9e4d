"""The exception tree of the ``adapters`` subsystem.

::

    AdapterError                  root: catch this to handle any adapter failure
    ├── MergeError                adapters that cannot be merged (modules, ranks, shapes, weights)
    ├── CombineError              bad inputs to the output ensemble or the α / weight search
    └── AdapterArtifactError      an adapter folder that cannot be written or read
        ├── AdapterExistsError    the target folder already exists (versions are immutable)
        └── AdapterIntegrityError hash mismatch, non-finite weights, missing or unsafe files

Other modules of ``adapters`` (training, scoring, the recommender) derive their errors from
:class:`AdapterError` too.
"""

from __future__ import annotations

__all__ = [
    "AdapterArtifactError",
    "AdapterError",
    "AdapterExistsError",
    "AdapterIntegrityError",
    "CombineError",
    "MergeError",
]


class AdapterError(Exception):
    """Root of every error raised by the ``adapters`` subsystem."""


class MergeError(AdapterError, ValueError):
    """Adapters (or merge weights) that cannot be combined; the message names the bad value."""


class CombineError(AdapterError, ValueError):
    """Bad inputs to the ensemble or the α / merge-weight search; the message names the value."""


class AdapterArtifactError(AdapterError):
    """An adapter folder that cannot be written or read."""


class AdapterExistsError(AdapterArtifactError, FileExistsError):
    """The target adapter folder already exists; saved versions are never overwritten."""


class AdapterIntegrityError(AdapterArtifactError):
    """An adapter folder that fails verification (hash, finiteness, format, missing file)."""
