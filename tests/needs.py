"""What a test needs from the machine: skip without it, except under ``CI=true``, where a
missing service, tool or dataset fails the test (a CI run must not go green by skipping).

A plain module next to the tests (on ``sys.path`` like ``live_system``): ``from needs import
missing``.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["IN_CI", "missing"]

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")
"""Whether this run is CI (``CI=true``, as CI services set it)."""


def missing(reason: str, *, module: bool = False) -> NoReturn:
    """Skip the calling test (the whole module with ``module=True``, at import) for
    ``reason``; under ``CI=true`` fail it instead."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing service or dataset fails the run)")
    pytest.skip(reason, allow_module_level=module)
