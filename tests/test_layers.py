"""Floors of the ``lsat`` package: a module imports only its own floor's package or lower floors.

import-linter cannot see ``lsat.stream`` / ``lsat.adapters`` in an editable install (they live in
their own folders through setuptools' ``package-dir``, and grimp only walks ``lsat/``), so this
test reads every module's imports itself, function-local ones included (a cycle hidden inside a
function is still a cycle). Floors, top first; packages on one floor do not import each other:
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {
    "lsat": REPO / "lsat",
    "lsat.stream": REPO / "stream",
    "lsat.adapters": REPO / "adapters",
}

FLOORS: tuple[tuple[str, ...], ...] = (
    ("lsat.apps", "lsat.adapters.experiment"),  # entry points: the lsat command, lsat up, the study
    ("lsat.adapters.trainer", "lsat.adapters.serving"),  # services
    ("lsat.adapters.lifecycle",),  # artifacts, registry, publication
    ("lsat.stream", "lsat.adapters.model"),  # the stream; the model library
    ("lsat.data",),  # datasets, samples, periods
    ("lsat.core",),  # settings, evaluation maths, SQLite and cache helpers
)
UNPLACED_OK = {"lsat", "lsat.adapters"}  # package roots: docstrings only


def module_files() -> dict[str, Path]:
    """Every module of the ``lsat`` package and its file."""
    modules: dict[str, Path] = {}
    for root_name, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((root_name, *parts))
            if name.startswith("lsat.stream") and root_name == "lsat":
                continue
            modules[name] = path
    return modules


def floor_of(module: str) -> tuple[int, str] | None:
    """(floor index, the package that places it) for a module, ``None`` if on no floor."""
    for index, packages in enumerate(FLOORS):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return index, package
    return None


def imported_modules(module: str, path: Path) -> set[str]:
    """Absolute names of every ``lsat`` module that ``path`` imports, wherever the import is."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "lsat" or name.startswith("lsat.")}


def violations() -> list[str]:
    modules = module_files()
    problems = []
    for module, path in modules.items():
        own = floor_of(module)
        if own is None:
            if module not in UNPLACED_OK:
                problems.append(f"{module} is on no floor: add its package to FLOORS")
            continue
        imported = {name for name in imported_modules(module, path) if name in modules}
        for target in sorted(imported):
            if any(other.startswith(target + ".") for other in imported):
                continue  # report `from pkg import mod` once, as pkg.mod
            theirs = floor_of(target)
            if theirs is None or theirs[1] == own[1]:
                continue
            if theirs[0] < own[0]:
                problems.append(f"{module} imports {target}: climbs from {own[1]} to {theirs[1]}")
            elif theirs[0] == own[0]:
                problems.append(
                    f"{module} imports {target}: {own[1]} and {theirs[1]} share a floor"
                )
    return problems


def test_every_import_goes_down_a_floor() -> None:
    assert violations() == []


def test_the_checker_sees_a_climbing_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A planted upward import (inside a function, as the old lsat/cli.py hid one) is reported."""
    fake = tmp_path / "lsat"
    (fake / "core").mkdir(parents=True)
    (fake / "apps").mkdir()
    (fake / "core" / "__init__.py").write_text("")
    (fake / "apps" / "__init__.py").write_text("")
    (fake / "core" / "settings.py").write_text("def f():\n    from lsat.apps import cli\n")
    (fake / "apps" / "cli.py").write_text("from ..core import settings\n")
    monkeypatch.setitem(FOLDERS, "lsat", fake)
    monkeypatch.setitem(FOLDERS, "lsat.stream", tmp_path / "none")
    monkeypatch.setitem(FOLDERS, "lsat.adapters", tmp_path / "none")
    assert violations() == [
        "lsat.core.settings imports lsat.apps.cli: climbs from lsat.core to lsat.apps"
    ]


def test_packaging_lists_every_package() -> None:
    """pyproject's explicit package list (needed by package-dir) misses no folder."""
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    on_disk = {name for name, path in module_files().items() if path.name == "__init__.py"}
    assert on_disk == listed
