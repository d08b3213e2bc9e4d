"""bench_recipes: the recipe grids, and a quick tiny-Llama search that writes one table row per
recipe and resumes from its cached scores."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_recipes  # noqa: E402
from bench_recipes import parse_args  # noqa: E402
from recipes_report import FACTORS, Recipe, build_grid, parse_recipe  # noqa: E402


def _values(argv: list[str]) -> tuple[dict[str, list], Recipe]:
    args = parse_args(argv)
    return {f: getattr(args, f) for f in FACTORS}, args.recipe


def test_default_grid_varies_one_factor_at_a_time_around_the_probe_recipe() -> None:
    values, baseline = _values([])
    assert baseline == Recipe(lr=1e-3, epochs=1, r=8, modules="qv", layers="8")
    recipes = build_grid(values, baseline, "ofat", total_layers=30)
    assert recipes[0] == baseline and len(recipes) == len(set(recipes)) == 10
    for recipe in recipes[1:]:
        changed = [f for f in FACTORS if getattr(recipe, f) != getattr(baseline, f)]
        assert len(changed) == 1, recipe
    assert {r.modules for r in recipes} == {"qv", "qkvo", "qv_mlp"}
    assert {r.epochs for r in recipes} == {1, 3}
    assert len(build_grid(values, baseline, "full", 30)) == 3 * 2 * 3 * 3 * 3


def test_top_n_at_or_above_the_model_depth_is_all_layers_and_counted_once() -> None:
    values, baseline = _values([])
    recipes = build_grid(values, baseline.for_model(8), "ofat", total_layers=8)
    assert baseline.for_model(8).layers == "all"
    # top 8 and all are the same adapter on an 8-layer model: one recipe fewer
    assert len(recipes) == 9 and sum(r == baseline.for_model(8) for r in recipes) == 1
    assert Recipe(layers="4").layer_indices(8) == (4, 5, 6, 7)
    assert Recipe(layers="all").layer_indices(8) is None


def test_recipe_names_say_what_differs_from_the_baseline() -> None:
    baseline = parse_recipe([])
    assert baseline.name(baseline).startswith("baseline: lr 0.001, 1 ep, r 8, qv, top 8")
    assert parse_recipe(["lr=3e-4", "modules=qv_mlp"]).name(baseline) == "lr 0.0003, qv_mlp"
    assert parse_recipe(["epochs=3"]).name(baseline) == "3 ep + early stop"
    with pytest.raises(ValueError, match="unknown recipe factor"):
        parse_recipe(["alpha=4"])
    with pytest.raises(ValueError, match="layers must be"):
        parse_recipe(["layers=top"])
    with pytest.raises(SystemExit):
        parse_args(["--layers", "0"])


def test_quick_search_writes_one_row_per_recipe_and_resumes_from_cached_scores(
    ml100k_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LSAT_HOME", str(tmp_path / "home"))
    out = tmp_path / "recipes.md"
    argv = [
        "--quick",
        "--dataset", str(ml100k_dir),
        "--threads", "1",
        "--out", str(out),
    ]  # fmt: skip
    assert bench_recipes.main(argv) == 0
    first = out.read_text()
    assert "Partial" not in first and "Load average" in first
    assert out.with_suffix(".png").stat().st_size > 0
    values, baseline = _values(argv)
    recipes = build_grid(values, baseline, "ofat", total_layers=4)
    rows = _recipe_rows(first)
    assert len(rows) == len(recipes) == 10  # quick: layers 1 / 2 / all around top 2 of 4
    assert all(0.0 <= auc <= 1.0 for auc in rows.values())
    assert sum(line.startswith("| – | best") for line in first.splitlines()) == 2
    cached = sorted((tmp_path / "home" / "cache" / "bench_recipes").glob("*.json"))
    assert len(cached) == len(recipes)
    # a rerun reads the cache instead of training: flip every cached score, every AUC flips
    for path in cached:
        data = json.loads(path.read_text())
        data["test"] = [1.0 - p for p in data["test"]]
        path.write_text(json.dumps(data))
    assert bench_recipes.main(argv) == 0
    second = out.read_text()
    flipped = _recipe_rows(second)
    for name, value in rows.items():
        assert flipped[name] == pytest.approx(1.0 - value, abs=0.0015)
    assert _column(second, 7) == _column(first, 7)  # the cached training seconds, not new ones


def _recipe_rows(markdown: str) -> dict[str, float]:
    """Recipe name -> test AUC of the numbered rows (finite, or the test fails)."""
    rows = {}
    for cells in _numbered(markdown):
        value = float(cells[2].split("±")[0])
        assert math.isfinite(value), cells
        rows[cells[1]] = value
    return rows


def _column(markdown: str, index: int) -> list[str]:
    return [cells[index] for cells in _numbered(markdown)]


def _numbered(markdown: str) -> list[list[str]]:
    """The cells of the table rows numbered 1, 2, ... (one per recipe)."""
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in markdown.splitlines()]
    return [cells for cells in rows if cells and cells[0].isdigit()]
