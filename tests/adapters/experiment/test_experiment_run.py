"""The experiment end to end on a small slice of ml-100k with a random tiny Llama.

One complete run with every strategy; an interrupted run resumed without redoing finished
periods (checked through the recorded train log) and matching the uninterrupted run; a
changed configuration refused.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from lsat.adapters.experiment.config import ExperimentConfig
from lsat.adapters.experiment.runner import run_experiment
from lsat.adapters.experiment.state import STATE_FILE, open_state
from lsat.adapters.experiment.strategies import (
    LONG_BASED_STRATEGIES,
    STRATEGIES,
    ConfigMismatchError,
)
from lsat.adapters.model.base_model import BaseLM, tiny_llama

PERIODS, PER_PERIOD = 4, 40


class Interrupted(RuntimeError):
    """Raised by the test hook to simulate a crash between periods."""


@pytest.fixture(scope="module")
def base() -> BaseLM:
    return tiny_llama(0, hidden_size=128, num_layers=4)


def _config(ml100k_dir: Path, **changes: object) -> ExperimentConfig:
    values: dict[str, object] = {
        "dataset": str(ml100k_dir),
        "periods": PERIODS,
        "samples_per_period": PER_PERIOD,
        "base_model": "tiny-llama",
        "epochs": 1,
        "bf16": False,
        "merge_grid": (0.5,),
        "lora_layers": 2,
    }
    values.update(changes)
    return ExperimentConfig(**values)  # type: ignore[arg-type]


def test_complete_run_writes_every_output(ml100k_dir: Path, base: BaseLM, tmp_path: Path) -> None:
    config = _config(ml100k_dir)
    result = run_experiment(config, tmp_path, base=base, progress=False)

    with (tmp_path / "periods.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["strategy"], int(r["period"])) for r in rows} == {
        (s, p) for s in STRATEGIES for p in range(2, PERIODS + 1)
    }
    for row in rows:
        defined = not (row["strategy"] in LONG_BASED_STRATEGIES and int(row["period"]) <= 2)
        assert math.isfinite(float(row["auc"])) == defined, row
        assert int(row["n_test"]) == PER_PERIOD
        if defined:
            assert 0.0 <= float(row["auc"]) <= 1.0
            assert float(row["logloss"]) > 0
            assert int(row["train_samples"]) > 0 or row["strategy"] in ("static", "long")
    mixes = {r["strategy"]: r["mix"] for r in rows if r["period"] == str(PERIODS)}
    assert 0.0 <= float(mixes["lsat-en"]) <= 1.0 and float(mixes["lsat-ta-delta"]) == 0.5
    assert mixes["short"] == ""

    summary = (tmp_path / "summary.md").read_text()
    for strategy in STRATEGIES:
        assert f"| {strategy} | 2 |" in summary  # averaged over test periods 3 and 4
    assert (tmp_path / "summary.csv").exists()
    assert (tmp_path / "auc.png").read_bytes()[:4] == b"\x89PNG"
    assert [s.strategy for s in result.summaries] == list(STRATEGIES)

    per_period: dict[int, int] = {}
    for record in result.trained:
        per_period[record.period] = per_period.get(record.period, 0) + 1
    # period 1: static = short = full = fine-tune (one LoRA on period 1); period 2 (= m):
    # short, full = long (periods 1..2), fine-tune, short-warm (from long); period 3: short,
    # full, fine-tune, short-warm
    assert per_period == {1: 1, 2: 4, 3: 4}
    # only the adapters later periods need are kept on disk: static, long, fine-tuned
    kept = sorted(p.name for p in (tmp_path / "adapters").iterdir())
    state = open_state(tmp_path, config.to_dict())
    assert kept == sorted(set(state.saved))
    assert set(state.roles) == {"static", "long", "finetune"}


def test_resume_redoes_no_finished_period(ml100k_dir: Path, base: BaseLM, tmp_path: Path) -> None:
    strategies = "short,finetune,long,lsat-en,lsat-ta-ab,hybrid,mf,rate-stack"
    config = _config(ml100k_dir, strategies=strategies)
    reference = run_experiment(config, tmp_path / "straight", base=base, progress=False)

    def crash_after_two(period: int) -> None:
        if period == 2:
            raise Interrupted(period)

    out = tmp_path / "interrupted"
    with pytest.raises(Interrupted):
        run_experiment(config, out, base=base, progress=False, on_period_done=crash_after_two)
    resumed = run_experiment(config, out, base=base, progress=False)

    assert resumed.skipped_periods == [1, 2]
    assert {r.period for r in resumed.trained} == {3}
    state = open_state(out, config.to_dict())
    logged = [(r.period, r.adapter) for r in state.train_log]
    assert len(logged) == len(set(logged))  # nothing trained twice
    assert logged == [(r.period, r.adapter) for r in reference.trained]
    # the resumed run continues from the saved adapters: same results as the straight run
    straight = {(r.strategy, r.period): r for r in reference.rows}
    assert len(resumed.rows) == len(straight)
    for row in resumed.rows:
        other = straight[(row.strategy, row.period)]
        if math.isnan(other.auc):
            assert math.isnan(row.auc)
        else:
            assert row.auc == pytest.approx(other.auc, abs=1e-6), row.strategy
            assert row.mix == other.mix
            assert row.note == other.note  # the hybrid's choice too (its out-of-sample state)

    # rerunning a finished run trains nothing
    again = run_experiment(config, out, base=base, progress=False)
    assert again.trained == [] and again.skipped_periods == [1, 2, 3]


def test_changed_config_refuses_to_resume(ml100k_dir: Path, base: BaseLM, tmp_path: Path) -> None:
    config = _config(ml100k_dir, strategies="user-rate,mf")
    run_experiment(config, tmp_path, base=base, progress=False)
    before = (tmp_path / STATE_FILE).read_text()
    with pytest.raises(ConfigMismatchError) as info:
        run_experiment(_config(ml100k_dir, strategies="mf", epochs=2), tmp_path, base=base)
    message = str(info.value)
    assert "epochs: 1 -> 2" in message and "strategies" in message and str(tmp_path) in message
    assert (tmp_path / STATE_FILE).read_text() == before  # nothing lost
