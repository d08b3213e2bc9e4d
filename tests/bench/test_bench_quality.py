"""bench_quality's quick path: the split, the non-LLM rows, the hybrids' fallback, the outputs,
and a resumed tiny-Llama run that reuses its cached scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_quality  # noqa: E402
from quality_report import (  # noqa: E402
    LlmScores,
    baseline_rows,
    hybrid_rows,
    make_split,
    render_table,
    resolve_cut,
    row_aucs,
)

from lsat.data.collaborative import build_annotated_samples  # noqa: E402
from lsat.data.loaders import load_dataset  # noqa: E402


@pytest.fixture(scope="module")
def samples(ml100k_dir: Path):
    return build_annotated_samples(load_dataset(ml100k_dir).interactions)


def test_split_is_consecutive_in_time_around_the_cut(samples) -> None:
    cut = resolve_cut(30000, len(samples), 200, 150)
    split = make_split(samples, 200, 50, 100, cut)
    assert [len(split.train), len(split.val), len(split.test)] == [200, 50, 100]
    assert split.train[-1] is samples[cut - 1] and split.val[0] is samples[cut]
    assert split.test[0] is samples[cut + 50]
    times = [s.timestamp for s in split.train + split.val + split.test]
    assert times == sorted(times)
    with pytest.raises(ValueError, match="cut 100 leaves"):
        resolve_cut(100, len(samples), 200, 150)


def test_a_useless_llm_leaves_the_hybrid_equal_to_the_rate_stack(samples) -> None:
    split = make_split(samples, 300, 200, 200, 30000)
    rows, stack = baseline_rows(split)
    rng = np.random.default_rng(0)
    noise = LlmScores(rng.uniform(size=200), rng.uniform(size=200), 1.0)
    oracle = LlmScores(
        0.2 + 0.6 * split.labels("val"), 0.2 + 0.6 * split.labels("test"), 2.0
    )  # knows every label
    by_name = {r.name: r for r in rows + hybrid_rows(split, {"noise": noise}, stack)}
    fallback = by_name["hybrid: noise"]
    assert fallback.note.startswith("rates only")
    stack_row = by_name["rate stack: 3 rates + co-like + item count, on validation"]
    np.testing.assert_allclose(fallback.test_scores, stack_row.test_scores)
    kept = {r.name: r for r in hybrid_rows(split, {"oracle": oracle}, stack)}
    assert kept["hybrid: oracle"].note.startswith("with llm:oracle")
    assert row_aucs(split, kept["stacked hybrid: oracle"])["all"][0] > 0.95
    assert kept["hybrid: oracle"].seconds >= 2.0  # the LLM's cost is carried over


def test_table_has_every_row_with_warm_and_cold_cells(samples) -> None:
    split = make_split(samples, 300, 200, 200, 30000)
    rows, _ = baseline_rows(split)
    lines = render_table(split, rows)
    n_cold = int(split.cold.sum())
    assert lines[0].startswith(f"| row | test AUC ± s.e. | warm ({200 - n_cold}) | cold ({n_cold})")
    assert len(lines) == 2 + len(rows) and all(line.count("|") == 6 for line in lines)


def test_quick_run_writes_results_and_resumes_from_cached_scores(
    ml100k_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LSAT_HOME", str(tmp_path / "home"))
    out = tmp_path / "quality.md"
    argv = [
        "--quick",
        "--dataset", str(ml100k_dir),
        "--train", "48", "--val", "40", "--test", "40",
        "--prompts", "tallrec",
        "--sensitivity-cuts", "5000",
        "--threads", "1",
        "--out", str(out),
    ]  # fmt: skip
    assert bench_quality.main(argv) == 0
    first = out.read_text()
    assert "Partial" not in first
    assert "| LLM: tallrec |" in first and "| stacked hybrid: tallrec |" in first
    assert "| 5000 |" in first  # the other cut's row
    assert out.with_suffix(".png").stat().st_size > 0
    folder = tmp_path / "home" / "cache" / "bench_quality"
    cached = [p for p in folder.glob("tallrec-*.json") if not p.name.endswith(".train.json")]
    assert len(cached) == 1 and cached[0].with_suffix(".safetensors").exists()
    # a rerun must read the cached scores, not retrain: flip them and the AUC flips
    data = json.loads(cached[0].read_text())
    data["test"] = [1.0 - p for p in data["test"]]
    cached[0].write_text(json.dumps(data))
    assert bench_quality.main(argv) == 0
    before, after = (_llm_auc(text) for text in (first, out.read_text()))
    assert after == pytest.approx(1.0 - before, abs=0.0015)
    # a crash after training but before scoring: the saved adapter is scored, not retrained
    cached[0].unlink()
    capsys.readouterr()
    assert bench_quality.main(argv) == 0
    log = capsys.readouterr().err
    assert "adapter resumed" in log and "trained" not in log
    assert _llm_auc(out.read_text()) == pytest.approx(before, abs=0.0015)


def _llm_auc(markdown: str) -> float:
    line = next(x for x in markdown.splitlines() if x.startswith("| LLM: tallrec |"))
    return float(line.split("|")[2].split("±")[0])
