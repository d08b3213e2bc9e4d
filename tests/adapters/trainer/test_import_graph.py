"""The trainer's modules import each other one way: no cycle, and only the entry points import
the job module (which wires every collaborator).

Imports are read from the source (function-local ones too) with the parser of
``tests/test_layers.py``; a cycle hidden inside a function is still a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from test_layers import imported_modules, module_files

PACKAGE = "lsat.adapters.trainer"
JOB = f"{PACKAGE}.job"
MAY_IMPORT_JOB = {PACKAGE, f"{PACKAGE}.service"}  # the package's entry points


def import_graph(package: str) -> dict[str, set[str]]:
    """``{module: modules of package it imports}`` for every module of ``package``."""
    modules = module_files()
    inside = {m: p for m, p in modules.items() if m == package or m.startswith(package + ".")}
    graph = {}
    for module, path in inside.items():
        targets = {name for name in imported_modules(module, path) if name in inside}
        # `from pkg import mod` names pkg and pkg.mod: keep the module, not its package
        graph[module] = {
            t for t in targets if t != module and not any(o.startswith(t + ".") for o in targets)
        }
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_trainer_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert {JOB, f"{PACKAGE}.helpers", f"{PACKAGE}.pool"} <= graph.keys()
    assert cycles(graph) == []


def test_only_the_entry_points_import_the_job_module() -> None:
    importers = {module for module, targets in import_graph(PACKAGE).items() if JOB in targets}
    assert importers == MAY_IMPORT_JOB


def test_the_helpers_module_is_a_leaf() -> None:
    graph = import_graph(PACKAGE)
    assert graph[f"{PACKAGE}.helpers"] <= {f"{PACKAGE}.child", f"{PACKAGE}.options"}
    assert graph[f"{PACKAGE}.child"] <= {f"{PACKAGE}.errors"}
    assert graph[f"{PACKAGE}.options"] == set()


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),  # the old job ↔ window_evaluation shape
        ({"j": {"l"}, "l": {"m"}, "m": {"j"}, "x": {"j"}}, [["j", "l", "m"]]),
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
    ],
)
def test_the_cycle_finder_sees_planted_cycles(
    graph: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert cycles(graph) == expected
