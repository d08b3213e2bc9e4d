"""One retrain job: test-then-train on a window, train a short adapter, guard, register, publish.

Order of a job (each step only after the previous one finished):

1. a re-delivered request whose short adapter is already registered is not retrained: a
   version that was registered but never promoted (the trainer died in between) is verified and
   promoted now (:class:`.resume.Resumer`), anything else is a duplicate;
2. score the window with what serves now *before* training on it (:mod:`.window_evaluation`:
   the adapters, their α ensemble, the serving hybrid combiner and the non-LLM baselines of
   :mod:`.baselines`; AUC and logloss per name into the registry and Prometheus, the per-sample
   out-of-sample rows into the registry) and feed the served score's losses to the loss-drift
   detector (:mod:`.drift`);
3. fit the hybrid combiner on earlier windows' rows and guard it on this window's; an accepted
   one is refitted on the rows up to this window before it is published (:mod:`.combiner`);
4. train a new short adapter on the first 90 % in a child process (:mod:`.child`; from scratch,
   or warm-started from the serving long adapter);
5. verify its folder (sha256, finite weights), pick α on the last 10 % (:mod:`.candidate`);
6. register it (with the combiner chosen in 3) — as a candidate if the combined validation AUC
   is not worse than the serving combination's by more than ``margin``, else as rejected with
   the reason — and promote it (:class:`.promotion.Promoter`: ``serving-short``, plus
   ``serving-merged``), which publishes the whole :class:`ServingSet` — unless an earlier
   version of the window was registered meanwhile (:mod:`.window_claim`: it is rejected);
7. ask the long-adapter policy (:class:`.long.LongRefresher`: every K windows, or a loss drift
   detected in this window) and retrain + promote the long adapter when it says so.

:class:`Retrainer` only sequences these steps; each one is a collaborator passed in.
:func:`build_retrainer` wires the default ones from the settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from lsat.adapters.lifecycle.artifacts import load_adapter
from lsat.adapters.lifecycle.publication import ServingSet
from lsat.adapters.lifecycle.registry import RegistryStore
from lsat.adapters.model.base_model import load_base_model
from lsat.adapters.model.errors import AdapterIntegrityError
from lsat.adapters.trainer.baselines import RateBaselines, ServedHybrid
from lsat.adapters.trainer.candidate import CandidateJudge
from lsat.adapters.trainer.child import InitAdapter, train_in_child
from lsat.adapters.trainer.combiner import CombinerFitter
from lsat.adapters.trainer.drift import LossDrift
from lsat.adapters.trainer.helpers import (
    RetrainOutcome,
    ServingNow,
    TrainFn,
    adapter_name,
    child_job,
    split_window,
)
from lsat.adapters.trainer.long import LongRefresher
from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.adapters.trainer.oos_rows import EarlierRows, WindowRowsLog
from lsat.adapters.trainer.options import QualityOptions
from lsat.adapters.trainer.pool import AdapterPool, TitleCache
from lsat.adapters.trainer.promotion import Promoter
from lsat.adapters.trainer.publisher import ServingPublisher
from lsat.adapters.trainer.resume import Resumer, registered_short
from lsat.adapters.trainer.window_claim import yield_to_earlier
from lsat.adapters.trainer.window_evaluation import (
    ServingAdapters,
    WindowEvaluator,
    WindowScorer,
)
from lsat.core.settings import Settings
from lsat.stream.store import SampleStore
from lsat.stream.triggers import RetrainRequest

__all__ = ["Retrainer", "build_retrainer"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class Retrainer:
    """Sequences one retrain job over its collaborators; the parent process only scores."""

    settings: Settings
    registry: RegistryStore
    store: SampleStore
    pool: AdapterPool
    evaluator: WindowEvaluator
    drift: LossDrift
    judge: CandidateJudge
    promoter: Promoter
    publisher: ServingPublisher
    resumer: Resumer
    long_refresher: LongRefresher
    metrics: TrainerMetrics
    train_fn: TrainFn = train_in_child
    combiner: CombinerFitter | None = None
    options: QualityOptions = field(default_factory=QualityOptions)

    def handle(self, request: RetrainRequest) -> RetrainOutcome:
        """Run one job; raises (leaving the request to the caller's retry) if it failed."""
        started = time.monotonic()
        try:
            outcome = self._handle(request)
            if outcome.outcome in ("promoted", "rejected"):
                outcome = self._refresh_long_if_due(request, outcome)
        except Exception:  # counted here, re-raised for the caller's retry
            self.metrics.retrain_total.labels(trigger=request.trigger, outcome="failed").inc()
            raise
        self.metrics.retrain_total.labels(trigger=request.trigger, outcome=outcome.outcome).inc()
        self.metrics.retrain_duration.observe(time.monotonic() - started)
        log.info("window %d: %s (%s)", request.window_id, outcome.outcome, outcome.reason)
        return outcome

    def _handle(self, request: RetrainRequest) -> RetrainOutcome:
        window_id = request.window_id
        samples = self.store.window_samples(window_id)
        samples = samples[-self.settings.trainer.max_samples_per_window :]
        done = registered_short(self.registry, window_id)
        if done is not None:
            return self.resumer.resume(request, done, samples)
        if len(samples) < 2:
            return RetrainOutcome(window_id, "skipped", f"window has {len(samples)} samples")
        self.pool.use_titles_for(samples)
        now = ServingNow.read(self.registry)
        evaluation = self.evaluator.evaluate(window_id, samples, now)
        if evaluation.losses is not None:
            self.drift.observe_window(window_id, evaluation.losses)
        extra: dict[str, object] = {}
        if self.combiner is not None:
            served_auc = evaluation.metrics.get("served", {}).get("auc")
            choice = self.combiner.choose(window_id, samples, evaluation.probs, now, served_auc)
            extra.update(choice.metrics)
        train, validation = split_window(samples, self.settings.trainer.validation_fraction)
        titles = self.pool.recommender.titles
        init = None
        if self.options.short_init == "long" and now.long is not None:
            init = InitAdapter(now.long.path, now.long.sha256, str(now.long.key))
        extra["short_init"] = "scratch" if init is None else f"warm from {init.key}"
        job = child_job(
            self.settings,
            "short",
            train,
            validation,
            titles,
            f"w{window_id}",
            {"window": window_id},
            self.options,
            init,
        )
        result = self.train_fn(job)
        try:
            loaded = load_adapter(Path(result.path))
        except AdapterIntegrityError as exc:
            reason = f"refused: {exc}"
            version = self.registry.register(
                "short",
                path=result.path,
                sha256=result.sha256,
                window_id=window_id,
                trigger=request.trigger,
                metrics=result.metrics,
                status="rejected",
                status_reason=reason[:1000],
            )
            return RetrainOutcome(window_id, "rejected", reason, version, None, evaluation.metrics)
        verdict = self.judge.register(request, loaded, result, validation, now, extra)
        first = yield_to_earlier(self.registry, verdict.version)
        if first is not None:  # a trainer presumed dead meanwhile decided this window
            if verdict.promote:
                self.pool.drop(adapter_name(verdict.version))
            reason = f"{first.key} was registered for this window while this trainer trained"
            return RetrainOutcome(window_id, "duplicate", reason, first, None, evaluation.metrics)
        if not verdict.promote:
            return RetrainOutcome(
                window_id, "rejected", verdict.reason, verdict.version, None, evaluation.metrics
            )
        published = self.promoter.promote(verdict.version, now.long, validation, verdict.reason)
        return RetrainOutcome(
            window_id, "promoted", verdict.reason, verdict.version, published, evaluation.metrics
        )

    def _refresh_long_if_due(
        self, request: RetrainRequest, outcome: RetrainOutcome
    ) -> RetrainOutcome:
        """Retrain and promote the long adapter when the policy says so; publish after."""
        refreshed = self.long_refresher.refresh_if_due(request.window_id, self.drift.in_last_window)
        if refreshed is None:
            return outcome
        self.drift.reset()
        return replace(outcome, long_refreshed=refreshed, serving=self.publisher.publish_current())


def build_retrainer(
    settings: Settings,
    registry: RegistryStore,
    store: SampleStore,
    *,
    publish: Callable[[ServingSet], None] | None = None,
    metrics: TrainerMetrics | None = None,
    train_fn: TrainFn = train_in_child,
    scorers: Sequence[Callable[[AdapterPool], WindowScorer]] | None = None,
    options: QualityOptions | None = None,
) -> Retrainer:
    """The default wiring: one adapter pool, registry, sample store and metrics shared by all.

    ``scorers`` build the window evaluation's scorers from the pool (default: the serving
    adapters, the rate baselines fitted on earlier windows, the serving hybrid combiner);
    ``publish`` sends a serving set on ``adapter.versions``; ``options`` chooses the prompt,
    the short adapter's start, early stopping, precision and the combiner's data.
    """
    options = options or QualityOptions()
    metrics = metrics or TrainerMetrics()
    trainer = settings.trainer
    earlier = EarlierRows(registry, store, windows=options.combiner_windows)
    if scorers is None:
        scorers = (
            ServingAdapters,
            lambda _pool: RateBaselines(earlier, min_rows=options.combiner_min_rows),
            lambda _pool: ServedHybrid(),
        )
    titles = TitleCache(store.catalogue)
    pool = AdapterPool(
        lambda: load_base_model(settings.base_model, cache_dir=settings.cache_dir),
        titles,
        bf16=options.bf16,
    )
    publisher = ServingPublisher(registry, metrics, publish)
    promoter = Promoter(
        registry, pool, publisher, artifact_dir=settings.artifact_dir, merge=trainer.merge
    )
    return Retrainer(
        settings=settings,
        registry=registry,
        store=store,
        pool=pool,
        evaluator=WindowEvaluator(
            registry, metrics, [make(pool) for make in scorers], log=WindowRowsLog(registry)
        ),
        drift=LossDrift(metrics),
        judge=CandidateJudge(registry, pool, margin=trainer.margin),
        promoter=promoter,
        publisher=publisher,
        resumer=Resumer(
            registry,
            pool,
            promoter,
            publisher,
            validation_fraction=trainer.validation_fraction,
        ),
        long_refresher=LongRefresher(settings, registry, store, titles, train_fn, options),
        metrics=metrics,
        train_fn=train_fn,
        combiner=CombinerFitter(earlier, margin=trainer.margin, min_rows=options.combiner_min_rows),
        options=options,
    )
