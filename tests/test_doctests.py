"""Run the docstring examples of every module of the ``lsat`` package (lsat/, adapters/, stream/).

Collected explicitly (rather than with ``--doctest-modules``) so the several ``conftest.py``
files under tests/ never clash, and so ``pytest tests`` alone runs the examples too.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

# lsat.stream and lsat.adapters live in their own folders (package-dir), so walk them explicitly.
PACKAGES = ("lsat", "lsat.stream", "lsat.adapters")
SKIPPED = ("lsat.adapters.lifecycle.registry.migrations",)  # alembic env scripts run on import
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if not info.name.startswith(SKIPPED):
                names.append(info.name)
    return sorted(set(names))


@pytest.mark.parametrize("module_name", _module_names())
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
