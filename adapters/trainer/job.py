"""One retrain job: test-then-train on a window, train a short adapter, guard, register, publish.

Order of a job (each step only after the previous one finished):

1. a re-delivered request whose short adapter is already registered is not retrained: a
   version that was registered but never promoted (the trainer died in between) is verified and
   promoted now (:mod:`.resume`), anything else is a duplicate;
2. score the window with the serving long / short / combined adapters *before* training on it
   and record per-adapter AUC and logloss (registry + Prometheus) and the loss-drift statistic;
3. train a new short adapter on the first 90 % in a child process (:mod:`.child`);
4. verify its folder (sha256, finite weights), pick α and the merge weight on the last 10 %;
5. register it — as a candidate if the combined validation AUC is not worse than the serving
   combination's by more than ``margin``, else as rejected with the reason — and promote it
   (``serving-short``, plus ``serving-merged``), then publish the whole :class:`ServingSet`;
6. ask the long-adapter policy (:func:`.long.long_refresh_due`: every K windows, or a loss drift
   detected in this window) and retrain + promote the long adapter when it says so.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lsat.adapters.lifecycle.artifacts import load_adapter
from lsat.adapters.lifecycle.publication import (
    ALPHA_METRIC,
    SERVING_ALIASES,
    ServingSet,
    current_serving_set,
)
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.model.combine import choose_alpha, ensemble
from lsat.adapters.model.errors import AdapterIntegrityError
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig
from lsat.adapters.trainer.child import ChildJob, ChildResult, load_base, train_in_child
from lsat.adapters.trainer.guard import decide_promotion, metric_or_none
from lsat.adapters.trainer.merge import merge_and_register
from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.adapters.trainer.window_evaluation import evaluate_serving_on_window
from lsat.core.evaluation import auc
from lsat.core.settings import Settings
from lsat.data.types import Sample
from lsat.stream.drift.page_hinkley import PageHinkley
from lsat.stream.store import SampleStore
from lsat.stream.triggers import RetrainRequest

__all__ = ["RetrainOutcome", "Retrainer", "TrainFn", "split_window", "train_config_of"]

log = logging.getLogger(__name__)

TrainFn = Callable[[ChildJob], ChildResult]
ACTOR = "lsat-trainer"


@dataclass(frozen=True)
class RetrainOutcome:
    """What a job did: ``outcome`` is promoted | rejected | duplicate | skipped."""

    window_id: int
    outcome: str
    reason: str
    version: AdapterVersion | None = None
    serving: ServingSet | None = None
    window_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    long_refreshed: AdapterVersion | None = None


def split_window(samples: Sequence[Sample], validation_fraction: float) -> tuple[list, list]:
    """First ``1 − f`` (time order) to train, the tail to validate; each side non-empty.

    >>> train, val = split_window(list(range(10)), 0.1)
    >>> len(train), val
    (9, [9])
    """
    cut = min(len(samples) - 1, max(1, round(len(samples) * (1 - validation_fraction))))
    return list(samples[:cut]), list(samples[cut:])


def train_config_of(settings: Settings) -> TrainConfig:
    """The TrainConfig the trainer settings describe (layers are resolved in the child)."""
    t = settings.trainer
    return TrainConfig(
        epochs=t.epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        bf16_autocast=t.bf16,
        max_seconds=t.max_train_seconds,
    )


class Retrainer:
    """Runs retrain jobs against one registry and sample store; the parent only scores."""

    def __init__(
        self,
        settings: Settings,
        registry: RegistryStore,
        store: SampleStore,
        *,
        publish: Callable[[ServingSet], None] | None = None,
        metrics: TrainerMetrics | None = None,
        train_fn: TrainFn = train_in_child,
    ) -> None:
        self.settings, self.registry, self.store = settings, registry, store
        self.publish = publish
        self.metrics = metrics or TrainerMetrics()
        self.train_fn = train_fn
        self.loss_detector = PageHinkley()
        self.drift_in_last_window = False
        self.catalogue_reads = 0
        self._titles: dict[str, str] = {}
        self._recommender: LoraRecommender | None = None

    # --- adapters in the (scoring-only) parent ------------------------------------------
    @property
    def recommender(self) -> LoraRecommender:
        if self._recommender is None:
            base = load_base(self.settings.base_model, self.settings.cache_dir)
            self._recommender = LoraRecommender(base, {}, progress=False)
        return self._recommender

    def loaded(self, version: AdapterVersion) -> str:
        """Load a registered version into the recommender (verified) and return its name."""
        name = f"{version.kind}-v{version.version}"
        if name not in self.recommender.adapter_names:
            loaded = load_adapter(Path(version.path))
            if loaded.metadata["sha256"] != version.sha256:
                raise AdapterIntegrityError(
                    f"{version.path}: registry sha256 {version.sha256} differs from the "
                    f"folder's {loaded.metadata['sha256']}"
                )
            self.recommender.set_lora_state(name, loaded.state, loaded.config)
        return name

    def titles_for(self, samples: Sequence[Sample]) -> dict[str, str]:
        """Item titles, read from the store only when ``samples`` name an item not cached yet."""
        needed = {s.item_id for s in samples} | {i for s in samples for i in s.history_item_ids}
        if not needed <= self._titles.keys():
            self._titles = {i: item.title for i, item in self.store.catalogue().items()}
            self.catalogue_reads += 1
        return self._titles

    # --- the job --------------------------------------------------------------------------
    def already_done(self, window_id: int) -> AdapterVersion | None:
        """The newest short version already registered for this window, if any."""
        for version in self.registry.list(kind="short"):
            if str(window_id) in {str(w) for w in version.window_ids}:
                return version
        return None

    def handle(self, request: RetrainRequest) -> RetrainOutcome:
        """Run one job; raises (leaving the request to be retried) if training failed."""
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
        done = self.already_done(window_id)
        if done is not None:
            from lsat.adapters.trainer.resume import resume_registered

            return resume_registered(self, request, done, samples)
        if len(samples) < 2:
            return RetrainOutcome(window_id, "skipped", f"window has {len(samples)} samples")
        self.recommender.titles = self.titles_for(samples)
        serving_long = self.registry.resolve(SERVING_ALIASES["long"])
        serving_short = self.registry.resolve(SERVING_ALIASES["short"])
        serving = current_serving_set(self.registry)
        window_metrics = evaluate_serving_on_window(
            self, window_id, samples, serving_long, serving_short, serving
        )
        train, validation = split_window(samples, self.settings.trainer.validation_fraction)
        result = self.train_fn(self._child_job("short", train, validation, window_id))
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
            return RetrainOutcome(window_id, "rejected", reason, version, None, window_metrics)
        return self._guard_and_register(
            request,
            loaded,
            result,
            validation,
            serving_long,
            serving_short,
            serving,
            window_metrics,
        )

    def _child_job(
        self, kind: str, train: list[Sample], validation: list[Sample], window: object
    ) -> ChildJob:
        tag = uuid.uuid4().hex[:8]
        return ChildJob(
            base_model=self.settings.base_model,
            cache_dir=str(self.settings.cache_dir),
            kind=kind,
            train=train,
            validation=validation,
            titles=dict(self.recommender.titles),
            target_dir=str(self.settings.artifact_dir / f"{kind}-w{window}-{tag}"),
            config=train_config_of(self.settings),
            top_layer_count=self.settings.trainer.layers,
            metadata={"window": window},
        )

    def observe_losses(self, losses: Sequence[float]) -> int:
        """Feed per-sample losses to the drift detector; count (and return) new detections.

        Only transitions into drift count, however long the detector stays there.
        """
        detections = 0
        in_drift = self.loss_detector.drift_detected
        for loss in losses:
            now = self.loss_detector.update(loss).drift_detected
            if now and not in_drift:
                detections += 1
                self.metrics.loss_drift_detections.inc()
            in_drift = now
        self.metrics.loss_drift.set(self.loss_detector.statistic)
        return detections

    def _guard_and_register(
        self,
        request: RetrainRequest,
        loaded: object,
        result: ChildResult,
        validation: list[Sample],
        long: AdapterVersion | None,
        short: AdapterVersion | None,
        serving: ServingSet | None,
        window_metrics: dict[str, dict[str, float]],
    ) -> RetrainOutcome:
        window_id = request.window_id
        labels = np.array([s.label for s in validation])
        new_name = f"new-short-w{window_id}"
        rec = self.recommender
        if new_name in rec.adapter_names:
            rec.delete_adapter(new_name)
        rec.set_lora_state(new_name, loaded.state, loaded.config)  # type: ignore[attr-defined]
        names = [new_name] + [self.loaded(v) for v in (long, short) if v is not None]
        probs = rec.score_many(names, validation)
        p_new = probs[new_name]
        metrics: dict[str, float | int | str | None] = dict(result.metrics)
        metrics["val_auc_short"] = metric_or_none(auc, labels, p_new)
        alpha = 0.0
        if long is not None:
            p_long = probs[self.loaded(long)]
            alpha = choose_alpha(labels, p_long, p_new).alpha
            p_combined = ensemble(p_long, p_new, alpha)
        else:
            p_combined = p_new
        metrics[ALPHA_METRIC] = alpha
        metrics["val_auc_combined"] = new_auc = metric_or_none(auc, labels, p_combined)
        old_auc = None
        if short is not None:
            p_old = probs[self.loaded(short)]
            if long is not None and serving is not None:
                p_old = ensemble(probs[self.loaded(long)], p_old, serving.alpha)
            old_auc = metric_or_none(auc, labels, p_old)
        metrics["serving_val_auc_combined"] = old_auc
        decision = decide_promotion(
            new_auc,
            old_auc,
            self.settings.trainer.margin,
            window_id=window_id,
            trigger=request.trigger,
            alpha=alpha,
            has_long=long is not None,
        )
        promote, reason = decision.promote, decision.reason
        clean = {k: v for k, v in metrics.items() if v is not None}
        version = self.registry.register(
            "short",
            path=result.path,
            sha256=result.sha256,
            window_id=window_id,
            trigger=request.trigger,
            parents=[long.key] if long is not None else [],
            metrics=clean,
            status="candidate" if promote else "rejected",
            status_reason=None if promote else reason,
        )
        rec.delete_adapter(new_name)
        if not promote:
            return RetrainOutcome(window_id, "rejected", reason, version, None, window_metrics)
        rec.set_lora_state(self._name(version), loaded.state, loaded.config)  # type: ignore[attr-defined]
        published = self.promote(version, long, validation, reason)
        return RetrainOutcome(window_id, "promoted", reason, version, published, window_metrics)

    def promote(
        self,
        version: AdapterVersion,
        long: AdapterVersion | None,
        validation: list[Sample],
        reason: str,
    ) -> ServingSet | None:
        """Merge with the serving long (if enabled), move the aliases, publish the serving set."""
        window_id = int(version.window_ids[-1])
        labels = np.array([s.label for s in validation])
        merged, merge_weight = None, None
        if long is not None and self.settings.trainer.merge and len(validation) > 1:
            merged, merge_weight = merge_and_register(
                self, long, version, validation, labels, window_id
            )
        self.registry.set_alias(
            SERVING_ALIASES["short"], "short", version.version, reason=reason, actor=ACTOR
        )
        if merged is not None:
            self.registry.set_alias(
                SERVING_ALIASES["merged"],
                "merged",
                merged.version,
                reason=f"ΔW merge w={merge_weight} of {long.key}+{version.key}",
                actor=ACTOR,
            )
        return self.publish_current()

    def _refresh_long_if_due(
        self, request: RetrainRequest, outcome: RetrainOutcome
    ) -> RetrainOutcome:
        """Retrain and promote the long adapter when :func:`long_refresh_due` says so."""
        from lsat.adapters.trainer.long import long_refresh_due, refresh_long

        long = self.registry.resolve(SERVING_ALIASES["long"])
        shorts = self.registry.list(kind="short")
        since = [v for v in shorts if long is None or v.created_at > long.created_at]
        windows_since = len({str(w) for v in since for w in v.window_ids})
        if long is None or not long_refresh_due(
            self.settings, windows_since, self.drift_in_last_window
        ):
            return outcome
        why = "loss drift" if self.drift_in_last_window else f"{windows_since} windows"
        refreshed = refresh_long(self, request.window_id, reason=f"refresh after {why}")
        self.loss_detector.reset()
        self.drift_in_last_window = False
        return replace(outcome, long_refreshed=refreshed, serving=self.publish_current())

    @staticmethod
    def _name(version: AdapterVersion) -> str:
        return f"{version.kind}-v{version.version}"

    def publish_current(self) -> ServingSet | None:
        """Publish the serving set the registry aliases describe (and update the gauges)."""
        serving = current_serving_set(self.registry)
        if serving is None:
            return None
        self.metrics.ensemble_alpha.set(serving.alpha)
        if serving.merge_weight is not None:
            self.metrics.merge_weight.set(serving.merge_weight)
        for kind, version in serving.keys.items():
            self.metrics.active_version.labels(kind=kind).set(version)
        if self.publish is not None:
            self.publish(serving)
        return serving
