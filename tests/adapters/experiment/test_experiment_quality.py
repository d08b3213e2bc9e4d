"""The experiment's quality options on ml-100k with a random tiny Llama: prompt format and item
noun reach the prompts, and the hybrid (over from-scratch or warm-started short adapters),
rate-stack and warm-started short strategies run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lsat.adapters.experiment.config import ADDED_SETTINGS, ExperimentConfig
from lsat.adapters.experiment.runner import make_recommender, prepare_periods, run_experiment
from lsat.adapters.experiment.state import open_state
from lsat.adapters.experiment.strategies import ConfigMismatchError
from lsat.adapters.model.base_model import BaseLM, tiny_llama

PERIODS, PER_PERIOD = 4, 40


@pytest.fixture(scope="module")
def base() -> BaseLM:
    return tiny_llama(0, hidden_size=128, num_layers=4)


def _config(ml100k_dir: Path, **changes: object) -> ExperimentConfig:
    values: dict[str, object] = {
        "dataset": str(ml100k_dir),
        "periods": PERIODS,
        "samples_per_period": PER_PERIOD,
        "base_model": "tiny-llama",
        "bf16": False,
        "lora_layers": 2,
        "strategies": "short,short-warm,hybrid,hybrid-warm,rate-stack",
    }
    values.update(changes)
    return ExperimentConfig(**values)  # type: ignore[arg-type]


def test_prompt_format_and_item_noun_reach_the_prompts(ml100k_dir: Path, base: BaseLM) -> None:
    config = _config(ml100k_dir, prompt_format="tallrec_hints", item_noun="product")
    dataset, periods = prepare_periods(config, None)
    assert all(s.collaborative is not None for p in periods for s in p.samples)
    rec = make_recommender(config, base, dataset, progress=False)
    prompt = rec._encode(periods[-1].samples[:1]).prompts[0]
    assert "the target product" in prompt and "movie" not in prompt
    assert "Earlier ratings by the user:" in prompt and prompt.endswith("### Response:")
    chat = make_recommender(_config(ml100k_dir, prompt_format="chat"), base, dataset)
    assert chat._encode(periods[-1].samples[:1]).prompts[0].endswith("<|im_start|>assistant\n")


def test_hybrid_rate_stack_and_warm_short(ml100k_dir: Path, base: BaseLM, tmp_path: Path) -> None:
    config = _config(ml100k_dir, hybrid_periods=2)
    result = run_experiment(config, tmp_path, base=base, progress=False)
    rows = {(r.strategy, r.period): r for r in result.rows}
    for period in range(2, PERIODS + 1):
        hybrid, stack = rows["hybrid", period], rows["rate-stack", period]
        assert math.isfinite(hybrid.auc) and math.isfinite(stack.auc)
        assert hybrid.note and 0.0 <= hybrid.mix <= 1.0
        if hybrid.mix == 0.0:  # no LLM feature kept: the hybrid ranks like the rate stack
            assert hybrid.auc == pytest.approx(stack.auc), hybrid.note
    # its cost: the adapters trained for it in that update (long too at the update m = 2)
    short_cost = {p: rows["short", p].train_samples for p in (2, 3, 4)}
    assert rows["hybrid", 2].train_samples == short_cost[2]
    assert rows["hybrid", 3].train_samples > short_cost[3]
    assert rows["hybrid", 4].train_samples == short_cost[4]
    assert math.isnan(rows["short-warm", 2].auc)  # needs the long adapter (m = 2)
    assert all(math.isfinite(rows["short-warm", p].auc) for p in (3, 4))
    # hybrid-warm: the long + warm-started short logits, from the update m = 2 on
    assert math.isnan(rows["hybrid-warm", 2].auc)
    for period in (3, 4):
        hybrid_warm, stack = rows["hybrid-warm", period], rows["rate-stack", period]
        assert math.isfinite(hybrid_warm.auc) and hybrid_warm.note
        if hybrid_warm.mix == 0.0:
            assert hybrid_warm.auc == pytest.approx(stack.auc), hybrid_warm.note
    warm = [r for r in result.trained if "short_warm" in r.roles]
    assert [(r.period, r.init_from) for r in warm] == [(2, "p02_long"), (3, "p02_long")]
    # out-of-sample scores are kept for the last hybrid_periods test periods only
    state = open_state(tmp_path, config.to_dict())
    assert sorted(state.oos) == ["3", "4"]
    assert set(state.oos["4"]) == {"long", "short", "short_warm"}  # both hybrids' scores kept
    assert len(state.oos["4"]["short"]) == PER_PERIOD


def test_runs_recorded_before_the_new_settings_still_resume(tmp_path: Path) -> None:
    config = ExperimentConfig(strategies="mf").to_dict()
    old = {k: v for k, v in config.items() if k not in ADDED_SETTINGS}
    open_state(tmp_path, old).save()
    resumed = open_state(tmp_path, config, defaults=ADDED_SETTINGS)
    assert "prompt_format" not in resumed.config and resumed.oos == {}
    with pytest.raises(ConfigMismatchError, match="prompt_format: \\(absent\\) -> chat"):
        open_state(tmp_path, {**config, "prompt_format": "chat"}, defaults=ADDED_SETTINGS)
