"""The exception tree of :mod:`lsat.data`.

::

    LsatDataError            root: anything wrong with data, samples or splits
    ├── DataFormatError      a malformed file row (names file, line and bad value)
    └── FetchError           a dataset could not be downloaded by any route
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataFormatError", "FetchError", "LsatDataError"]


class LsatDataError(ValueError):
    """Root of the data subsystem's errors."""


class DataFormatError(LsatDataError):
    """A row of a data file cannot be read.

    >>> str(DataFormatError("u.data", 7, "rating", "x", "not a number"))
    "u.data:7: bad rating 'x' (not a number)"
    """

    def __init__(self, path: str | Path, line: int, field: str, value: object, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{self.path}:{line}: bad {field} {value!r} ({reason})")


class FetchError(LsatDataError):
    """A dataset could not be obtained from any of its sources."""
