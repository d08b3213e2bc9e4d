"""Run the LSAT paper's incremental-learning experiment, resumably (DESIGN.md §1, paper §4).

For each update period t = 1..P-1: train the adapters the plan asks for (each shared adapter
once, see :mod:`lsat.adapters.experiment.strategies`), fit the non-LLM baselines on periods 1..t,
then test every strategy on all of period t+1. After each period the result rows, the train
log and the adapters later periods need (static, long, current fine-tune) are saved in the
output folder, so a rerun with the same configuration continues where it stopped.

Choices (documented in the report too):
* static = a LoRA trained on period 1 only; long = periods 1..m; long-based strategies have
  no result before the long adapter exists (test periods 2..m).
* fine-tuning keeps the previous adapter when the continued one does not beat it on period
  t's validation AUC.
* ``max_train_samples`` keeps the most recent samples of any adapter's training set (it only
  bites for full retraining and long, whose sets grow).
* baselines are fitted on every sample (train + validation) of periods 1..t.
* warm/cold: a test sample is cold when its target item is no target of periods 1..t.
* every sample carries the collaborative counts of all interactions before it (prequential);
  ``rate-stack`` is a logistic regression over them fitted on periods 1..t.
* ``hybrid`` = the rate stack's logit + the short (and, from m on, long) adapter's logit,
  fitted on out-of-sample scores (period t's validation, and the test-then-train scores of
  the last ``hybrid_periods`` periods); it falls back to the rate stack when the adapters do
  not raise the out-of-fold AUC. Its α/w column is the LLM features' share of the weights.
* ``short-warm`` = a short adapter trained on period t starting from the long adapter
  (t >= m), reported as trained (no keep-the-old guard), next to ``short`` from scratch.
* ``hybrid-warm`` = the hybrid over the long and the ``short-warm`` adapters' logits (t >= m).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from lsat.adapters.experiment.config import ADDED_SETTINGS, ExperimentConfig
from lsat.adapters.experiment.period import PeriodRunner
from lsat.adapters.experiment.report import (
    PeriodResult,
    StrategySummary,
    plot_auc,
    render_summary_table,
    summarize,
    write_period_csv,
    write_summary,
)
from lsat.adapters.experiment.state import RunState, TrainRecord, open_state
from lsat.adapters.experiment.strategies import ExperimentError
from lsat.adapters.lifecycle.artifacts import load_into_recommender
from lsat.adapters.model.base_model import BaseLM
from lsat.adapters.model.recommender import LoraRecommender
from lsat.data.collaborative import build_annotated_samples
from lsat.data.loaders import load_dataset
from lsat.data.periods import Period, split_periods

__all__ = [
    "ExperimentConfig",
    "ExperimentResult",
    "make_recommender",
    "prepare_periods",
    "run_experiment",
    "write_outputs",
]


@dataclass
class ExperimentResult:
    """What a (possibly resumed) run produced; ``trained`` lists this invocation's trainings."""

    out_dir: Path
    rows: list[PeriodResult]
    summaries: list[StrategySummary]
    trained: list[TrainRecord] = field(default_factory=list)
    skipped_periods: list[int] = field(default_factory=list)


def prepare_periods(config: ExperimentConfig, cache_dir: Path | None) -> tuple[Any, list[Period]]:
    """Load the dataset, build annotated TALLRec samples and cut the last N into periods."""
    dataset = load_dataset(
        config.dataset, like_threshold=config.like_threshold, cache_dir=cache_dir
    )
    samples = build_annotated_samples(dataset.interactions)
    wanted = config.periods * config.samples_per_period
    if len(samples) < wanted:
        raise ExperimentError(
            f"dataset {config.dataset!r} has {len(samples)} samples, fewer than periods × "
            f"samples_per_period = {config.periods} × {config.samples_per_period} = {wanted}"
        )
    periods = split_periods(
        samples,
        config.periods,
        by=config.split,
        last_n=wanted,
        validation_fraction=config.validation_fraction,
    )
    return dataset, list(periods)


def make_recommender(
    config: ExperimentConfig,
    base: BaseLM,
    dataset: Any,
    *,
    progress: bool = True,
    device: str | None = None,
) -> LoraRecommender:
    """The recommender every strategy trains and scores with (prompt format, item noun, …)."""
    return LoraRecommender(
        base,
        {item_id: item.title for item_id, item in dataset.items.items()},
        item_noun=config.item_noun or dataset.item_noun,
        prompt_format=config.prompt_format,
        train_config=config.train_config(base.model.config.num_hidden_layers),
        batch_size=config.score_batch_size,
        progress=progress,
        device=device,
    )


def run_experiment(
    config: ExperimentConfig,
    out_dir: Path,
    *,
    base: BaseLM | Callable[[], BaseLM],
    cache_dir: Path | None = None,
    console: Console | None = None,
    progress: bool = True,
    on_period_done: Callable[[int], None] | None = None,
    device: str | None = None,
) -> ExperimentResult:
    """Run (or resume) the experiment into ``out_dir``; writes CSVs, summary and plot.

    ``base`` is the base LM or a function loading it (called once the configuration and the
    dataset have been checked, so bad input fails fast). ``on_period_done(t)`` is called after
    update period t is saved (tests use it to simulate an interruption). ``device`` places the
    model (``None``: the CPU; not part of the configuration, so a run resumes anywhere).
    Raises :class:`ConfigMismatchError` when ``out_dir`` holds a run with another configuration.
    """
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    state = open_state(out_dir, config.to_dict(), defaults=ADDED_SETTINGS)
    dataset, periods = prepare_periods(config, cache_dir)
    if not isinstance(base, BaseLM):  # a loader: called once the config and data are known good
        base = base()
    recommender = make_recommender(config, base, dataset, progress=progress, device=device)
    runner = PeriodRunner(config, periods, recommender, state, out_dir, console)
    skipped = list(state.completed)
    if skipped:
        console.log(f"resuming {out_dir}: update periods {skipped} already done")
    todo = [t for t in range(1, config.periods) if t not in state.completed]
    try:
        for name, rel in state.saved.items():
            load_into_recommender(recommender, out_dir / rel, name)
        with Progress(console=console, disable=not progress) as bar:
            task = bar.add_task("experiment periods", total=config.periods - 1)
            bar.update(task, completed=len(skipped))
            for t in todo:
                started = time.perf_counter()
                rows = runner.run_period(t)
                runner.persist(t, rows)
                write_outputs(state, config, out_dir, console=None)
                bar.advance(task)
                console.log(f"period {t} done in {time.perf_counter() - started:.1f}s")
                if on_period_done is not None:
                    on_period_done(t)
    finally:  # leave the base model as it came (peft wraps it in place)
        for name in recommender.adapter_names:
            recommender.delete_adapter(name)
    return write_outputs(
        state, config, out_dir, console=console, trained=runner.trained, skipped=skipped
    )


def write_outputs(
    state: RunState,
    config: ExperimentConfig,
    out_dir: Path,
    *,
    console: Console | None,
    trained: list[TrainRecord] | None = None,
    skipped: list[int] | None = None,
) -> ExperimentResult:
    """Write periods.csv, summary.csv/.md and auc.png from the state; print the table."""
    rows = [PeriodResult.from_row(r) for r in state.rows]
    summaries = summarize(rows, config.periods)
    title = (
        f"{config.dataset}: {config.periods} periods × {config.samples_per_period} samples, "
        f"mean over test periods {config.periods - config.periods // 2 + 1}..{config.periods}"
    )
    write_period_csv(rows, out_dir / "periods.csv")
    write_summary(summaries, out_dir, title=title)
    plot_auc(rows, config.periods, out_dir / "auc.png", title=title)
    if console is not None:
        console.print(render_summary_table(summaries, title=title))
    return ExperimentResult(out_dir, rows, summaries, list(trained or []), list(skipped or []))
