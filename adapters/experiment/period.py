"""The work of one update period: train the planned adapters, combine, test, persist.

See :mod:`lsat.adapters.experiment.runner` for the protocol and the documented choices.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from lsat.adapters.experiment.config import ExperimentConfig
from lsat.adapters.experiment.hybrid_fit import OutOfSample, fit_period_hybrid, hybrid_columns
from lsat.adapters.experiment.report import PeriodResult
from lsat.adapters.experiment.state import RunState, TrainRecord
from lsat.adapters.experiment.strategies import (
    BASELINE_STRATEGIES,
    LONG_BASED_STRATEGIES,
    plan_updates,
    roles_at,
)
from lsat.adapters.lifecycle.artifacts import save_recommender_adapter
from lsat.adapters.model.combine import choose_alpha, choose_merge_weight, ensemble
from lsat.adapters.model.recommender import LoraRecommender
from lsat.core.evaluation import auc, logloss
from lsat.data.periods import Period, cold_mask
from lsat.data.types import Sample

__all__ = ["PERSISTENT_ROLES", "PeriodRunner"]

PERSISTENT_ROLES = ("static", "long", "finetune")
_SINGLE_ADAPTER = {
    "static": "static",
    "full": "full",
    "finetune": "finetune",
    "short": "short",
    "long": "long",
    "short-warm": "short_warm",
}
"""Strategies scored by one adapter: strategy → role."""

HYBRID_STRATEGIES = ("hybrid", "hybrid-warm")
"""Strategies scored by a combiner of the rate stack and adapter logits (`hybrid_scores`)."""


def _make_baseline(strategy: str, seed: int) -> Any:
    """A fresh non-LLM baseline model for ``strategy`` (``learn_many`` / ``predict_many``)."""
    from lsat.adapters.experiment import baselines

    factories: dict[str, Callable[[], Any]] = {
        "user-rate": baselines.UserLikeRate,
        "item-rate": baselines.ItemLikeRate,
        "rate-sum": baselines.LikeRateSum,
        "history-rate": baselines.HistoryLikeRate,
        "mf": lambda: baselines.MatrixFactorization(seed=seed),
        "rate-stack": baselines.RateStack,
    }
    return factories[strategy]()


def _labels(samples: Sequence[Sample]) -> np.ndarray:
    return np.asarray([s.label for s in samples], dtype=int)


@dataclass
class _Scores:
    """One strategy's probabilities on the test period plus its bookkeeping."""

    test: np.ndarray
    mix: float | None = None
    extra_seconds: float = 0.0
    note: str = ""


class PeriodRunner:
    """The work of one update period t (train, combine, test), using the shared state."""

    def __init__(
        self,
        config: ExperimentConfig,
        periods: list[Period],
        recommender: LoraRecommender,
        state: RunState,
        out_dir: Path,
        console: Console,
    ) -> None:
        self.config = config
        self.periods = periods
        self.rec = recommender
        self.state = state
        self.out_dir = out_dir
        self.console = console
        self.trained: list[TrainRecord] = []

    # -- data ---------------------------------------------------------------------------
    def period(self, number: int) -> Period:
        return self.periods[number - 1]

    def train_set(self, numbers: Sequence[int]) -> list[Sample]:
        samples = [s for n in numbers for s in self.period(n).train]
        cap = self.config.max_train_samples
        return samples[-cap:] if cap is not None else samples

    # -- training -----------------------------------------------------------------------
    def train_adapters(self, t: int) -> dict[str, list[TrainRecord]]:
        """Run the plan of period t; returns, per role, the records trained for it now."""
        jobs = plan_updates(t, self.config.periods, self.config.m, self.config.strategies)
        by_key: dict[tuple, TrainRecord] = {}
        per_role: dict[str, list[TrainRecord]] = {}
        validation = list(self.period(t).validation)
        for job in jobs:
            init_from = self.state.roles.get(job.role) if job.continues and t > 1 else None
            if job.init_role is not None:  # warm start: no keep-the-old guard, reported raw
                init_from = self.state.roles[job.init_role]
            key = (job.train_periods, init_from)
            if key in by_key:
                record = by_key[key]
                by_key[key] = dataclasses.replace(record, roles=(*record.roles, job.role))
                self.state.roles[job.role] = record.adapter
                per_role[job.role] = [record]
                continue
            train = self.train_set(job.train_periods)
            self.console.log(
                f"period {t}: training {job.adapter_name} on {len(train)} samples"
                + (f" from {init_from}" if init_from else "")
            )
            report = self.rec.train_adapter(
                job.adapter_name, train, validation, init_from=init_from
            )
            kept = True
            if init_from is not None and job.init_role is None:
                old_auc = auc(_labels(validation), self.rec.score(init_from, validation))
                kept = not (report.val_auc <= old_auc)  # NaN comparisons keep the new one
                if not kept:
                    self.console.log(
                        f"period {t}: {job.adapter_name} val AUC {report.val_auc:.4f} does not "
                        f"beat {init_from} ({old_auc:.4f}); keeping {init_from}"
                    )
            record = TrainRecord(
                period=t,
                adapter=job.adapter_name,
                roles=(job.role,),
                train_samples=len(train),
                seconds=float(report.seconds),
                val_auc=float(report.val_auc),
                kept=kept,
                init_from=init_from,
            )
            by_key[key] = record
            per_role[job.role] = [record]
            self.state.roles[job.role] = job.adapter_name if kept else str(init_from)
        final = list(by_key.values())
        self.trained.extend(final)
        self.state.train_log.extend(final)
        # map the (possibly extended) shared records back to each role
        by_adapter = {r.adapter: r for r in final}
        return {role: [by_adapter[r[0].adapter]] for role, r in per_role.items()}

    # -- scoring ------------------------------------------------------------------------
    def score_strategies(self, t: int) -> dict[str, _Scores]:
        test = list(self.period(t + 1).samples)
        validation = list(self.period(t).validation)
        val_labels = _labels(validation)
        wanted = [s for s in self.config.strategies if s not in BASELINE_STRATEGIES]
        if t < self.config.m:
            wanted = [s for s in wanted if s not in LONG_BASED_STRATEGIES]
        m = self.config.m
        roles = sorted({role for s in wanted for role in roles_at(s, t, m)})
        names = sorted({self.state.roles[role] for role in roles})
        test_scores = self.rec.score_many(names, test) if names else {}
        out: dict[str, _Scores] = {}
        for strategy in wanted:
            if strategy in _SINGLE_ADAPTER:
                out[strategy] = _Scores(test_scores[self.state.roles[_SINGLE_ADAPTER[strategy]]])
        for hybrid in HYBRID_STRATEGIES:
            if hybrid in wanted:
                out[hybrid] = self.hybrid_scores(t, roles_at(hybrid, t, m), test_scores)
        needs_pair = [s for s in wanted if s.startswith("lsat")]
        if not needs_pair:
            return out
        long_name, short_name = self.state.roles["long"], self.state.roles["short"]
        val_scores = self.rec.score_many([long_name, short_name], validation)
        if "lsat-en" in needs_pair:
            started = time.perf_counter()
            choice = choose_alpha(
                val_labels,
                val_scores[long_name],
                val_scores[short_name],
                grid=self.config.alpha_grid,
            )
            p = ensemble(test_scores[long_name], test_scores[short_name], choice.alpha)
            out["lsat-en"] = _Scores(p, choice.alpha, time.perf_counter() - started)
        for strategy, method in (("lsat-ta-delta", "delta"), ("lsat-ta-ab", "ab_average")):
            if strategy in needs_pair:
                out[strategy] = self.merged_scores(
                    t, method, long_name, short_name, validation, test
                )
        return out

    def hybrid_scores(
        self, t: int, roles: Sequence[str], test_scores: Mapping[str | None, np.ndarray]
    ) -> _Scores:
        """Fit the hybrid on out-of-sample scores up to period t; score period t+1.

        Also records period t+1's test scores per role: out-of-sample data for later updates.
        """
        started = time.perf_counter()
        validation = list(self.period(t).validation)
        names = {role: self.state.roles[role] for role in roles}
        current = self.rec.score_many(list(names.values()), validation)
        blocks = [OutOfSample(validation, {r: current[n] for r, n in names.items()})]
        first = max(1, t - self.config.hybrid_periods + 1)
        for earlier in range(first, t + 1):
            stored = self.state.oos.get(str(earlier), {})
            blocks.append(
                OutOfSample(
                    self.period(earlier).samples, {r: np.asarray(v) for r, v in stored.items()}
                )
            )
        history = [s for n in range(1, t + 1) for s in self.period(n).samples]
        stack = _make_baseline("rate-stack", self.config.seed).learn_many(history)
        combiner = fit_period_hybrid(stack, blocks, roles)
        test = list(self.period(t + 1).samples)
        role_scores = {r: test_scores[n] for r, n in names.items()}
        p = combiner.predict_proba(hybrid_columns(stack, test, role_scores))
        # merged: hybrid and hybrid-warm share the long adapter's scores, not the short ones
        self.state.oos.setdefault(str(t + 1), {}).update(
            {r: v.tolist() for r, v in role_scores.items()}
        )
        for old in [k for k in self.state.oos if int(k) <= t + 1 - self.config.hybrid_periods]:
            del self.state.oos[old]
        weights = dict(zip(combiner.features, combiner.weights, strict=True))
        llm_weight = sum(abs(w) for f, w in weights.items() if f.startswith("llm:"))
        share = llm_weight / (sum(abs(w) for w in weights.values()) or 1.0)
        return _Scores(p, share, time.perf_counter() - started, combiner.note)

    def merged_scores(
        self,
        t: int,
        method: str,
        long_name: str,
        short_name: str,
        validation: list[Sample],
        test: list[Sample],
    ) -> _Scores:
        """Merge long+short with the long weight that maximises validation AUC, then test."""
        started = time.perf_counter()
        val_labels = _labels(validation)
        tag = "ab" if method == "ab_average" else method
        made: list[str] = []

        def validation_auc(weight: float) -> float:
            name = f"p{t:02d}_merge_{tag}_{round(weight * 100):03d}"
            if name not in made:
                self.rec.merge(name, [long_name, short_name], [weight, 1.0 - weight], method=method)
                made.append(name)
            return auc(val_labels, self.rec.score(name, validation))

        choice = choose_merge_weight(validation_auc, grid=self.config.merge_grid)
        best = f"p{t:02d}_merge_{tag}_{round(choice.alpha * 100):03d}"
        if best not in made:  # every candidate was undefined: the default weight
            validation_auc(choice.alpha)
        scores = self.rec.score(best, test)
        for name in made:
            self.rec.delete_adapter(name)
        return _Scores(scores, choice.alpha, time.perf_counter() - started)

    # -- baselines ----------------------------------------------------------------------
    def baseline_scores(self, t: int) -> tuple[dict[str, _Scores], dict[str, tuple[int, float]]]:
        """Fit each baseline on all samples of periods 1..t; score period t+1."""
        history = [s for n in range(1, t + 1) for s in self.period(n).samples]
        test = list(self.period(t + 1).samples)
        scores: dict[str, _Scores] = {}
        costs: dict[str, tuple[int, float]] = {}
        for strategy in self.config.strategies:
            if strategy not in BASELINE_STRATEGIES:
                continue
            started = time.perf_counter()
            model = _make_baseline(strategy, self.config.seed).learn_many(history)
            seconds = time.perf_counter() - started
            scores[strategy] = _Scores(np.asarray(model.predict_many(test), dtype=float))
            costs[strategy] = (len(history), seconds)
        return scores, costs

    # -- one period ---------------------------------------------------------------------
    def run_period(self, t: int) -> list[PeriodResult]:
        """Train, score and evaluate update period t; returns its result rows."""
        trained = self.train_adapters(t)
        llm = self.score_strategies(t)
        baselines, baseline_costs = self.baseline_scores(t)
        test = list(self.period(t + 1).samples)
        labels = _labels(test)
        seen = {s.item_id for n in range(1, t + 1) for s in self.period(n).samples}
        cold = np.asarray(cold_mask(test, seen), dtype=bool)
        rows = []
        for strategy in self.config.strategies:
            result = llm.get(strategy) or baselines.get(strategy)
            if result is None:  # long-based before the long adapter exists
                rows.append(
                    PeriodResult(
                        strategy,
                        t + 1,
                        t,
                        n_test=len(test),
                        n_cold=int(cold.sum()),
                        note=f"n/a: the long adapter is trained at period {self.config.m}",
                    )
                )
                continue
            if strategy in baseline_costs:
                samples, seconds = baseline_costs[strategy]
            else:
                records = {
                    r.adapter: r
                    for role in roles_at(strategy, t, self.config.m)
                    for r in trained.get(role, [])
                }
                samples = sum(r.train_samples for r in records.values())
                seconds = sum(r.seconds for r in records.values())
            p = np.asarray(result.test, dtype=float)
            rows.append(
                PeriodResult(
                    strategy=strategy,
                    period=t + 1,
                    trained_on=t,
                    auc=auc(labels, p),
                    logloss=float(logloss(labels, p)),
                    warm_auc=auc(labels[~cold], p[~cold]),
                    cold_auc=auc(labels[cold], p[cold]),
                    n_test=len(test),
                    n_cold=int(cold.sum()),
                    train_samples=samples,
                    train_seconds=seconds + result.extra_seconds,
                    mix=result.mix,
                    note=result.note,
                )
            )
        return rows

    # -- persistence --------------------------------------------------------------------
    def persist(self, t: int, rows: list[PeriodResult]) -> None:
        """Save the adapters later periods need, then the state; drop the rest."""
        keep = {self.state.roles[r] for r in PERSISTENT_ROLES if r in self.state.roles}
        adapter_dir = self.out_dir / "adapters"
        adapter_dir.mkdir(exist_ok=True)
        for name in sorted(keep - set(self.state.saved)):
            target = adapter_dir / name
            if target.exists():  # left by an interrupted attempt at this period
                shutil.rmtree(target)
            roles = _roles_of_adapter(self.state.roles, name)
            metadata = {
                "kind": "long" if "long" in roles else "short",
                "window": {"experiment_period": t},
                "experiment_roles": roles,
            }
            path = save_recommender_adapter(self.rec, name, target, metadata)
            self.state.saved[name] = str(Path(path).relative_to(self.out_dir))
        stale = {name: rel for name, rel in self.state.saved.items() if name not in keep}
        for name in stale:
            del self.state.saved[name]
        self.state.roles = {r: n for r, n in self.state.roles.items() if r in PERSISTENT_ROLES}
        self.state.rows.extend(row.to_row() for row in rows)
        self.state.completed.append(t)
        self.state.save()
        for rel in stale.values():
            shutil.rmtree(self.out_dir / rel, ignore_errors=True)
        for name in self.rec.adapter_names:
            if name not in keep:
                self.rec.delete_adapter(name)


def _roles_of_adapter(roles: dict[str, str], name: str) -> list[str]:
    return sorted(role for role, adapter in roles.items() if adapter == name)
