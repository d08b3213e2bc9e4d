"""The long-term adapter: trained once on many windows (or a dataset slice), then frozen.

It is refreshed only by an explicit policy (every K windows, or sustained loss drift) or by
command (``lsat trainer --bootstrap-long``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lsat.adapters.lifecycle.artifacts import load_adapter
from lsat.adapters.lifecycle.publication import SERVING_ALIASES
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.trainer.child import ChildJob, train_in_child
from lsat.adapters.trainer.job import TrainFn, split_window, train_config_of
from lsat.core.settings import Settings
from lsat.data.types import Sample
from lsat.stream.store import SampleStore

if TYPE_CHECKING:
    from lsat.adapters.trainer.job import Retrainer

__all__ = ["bootstrap_long", "long_refresh_due", "refresh_long"]

log = logging.getLogger(__name__)


def long_refresh_due(settings: Settings, windows_since_long: int, drift_detected: bool) -> bool:
    """Whether the policy asks for a new long adapter.

    >>> from dataclasses import replace
    >>> s = Settings()
    >>> long_refresh_due(s, 50, True)  # default: never automatically
    False
    >>> s = replace(s, trainer=replace(s.trainer, long_refresh_every_windows=5))
    >>> long_refresh_due(s, 4, False), long_refresh_due(s, 5, False)
    (False, True)
    """
    policy = settings.trainer
    every = policy.long_refresh_every_windows
    if every is not None and windows_since_long >= every:
        return True
    return policy.long_refresh_on_drift and drift_detected


def bootstrap_long(
    settings: Settings,
    registry: RegistryStore,
    *,
    samples: Sequence[Sample] | None = None,
    window_ids: Sequence[int] | None = None,
    store: SampleStore | None = None,
    titles: dict[str, str] | None = None,
    train_fn: TrainFn = train_in_child,
    reason: str = "bootstrap",
) -> AdapterVersion:
    """Train a long adapter on ``samples`` (or the store's ``window_ids``; default the first
    ``long_bootstrap_windows`` closed ones), register it and promote it to ``serving-long``."""
    if samples is None:
        if store is None:
            raise ValueError("bootstrap_long needs samples, or a store (with optional window_ids)")
        if window_ids is None:
            closed = sorted(w.window_id for w in store.last_closed_windows(10_000))
            window_ids = closed[: settings.trainer.long_bootstrap_windows]
        samples = [s for w in window_ids for s in store.window_samples(w)]
    if titles is None:
        titles = {} if store is None else {i: it.title for i, it in store.catalogue().items()}
    samples = sorted(samples, key=lambda s: s.timestamp)
    if len(samples) < 2:
        raise ValueError(f"need at least 2 samples to train a long adapter, got {len(samples)}")
    train, validation = split_window(samples, settings.trainer.validation_fraction)
    label = "data" if window_ids is None else f"{min(window_ids)}-{max(window_ids)}"
    job = ChildJob(
        base_model=settings.base_model,
        cache_dir=str(settings.cache_dir),
        kind="long",
        train=train,
        validation=validation,
        titles=titles,
        target_dir=str(settings.artifact_dir / f"long-{label}-{uuid.uuid4().hex[:8]}"),
        config=train_config_of(settings),
        top_layer_count=settings.trainer.layers,
        metadata={"windows": list(window_ids or [])},
    )
    result = train_fn(job)
    load_adapter(result.path)  # refuses a corrupt or non-finite folder before registering
    version = registry.register(
        "long",
        path=result.path,
        sha256=result.sha256,
        window_id=list(window_ids) if window_ids else None,
        trigger="bootstrap" if reason == "bootstrap" else "refresh",
        metrics={**result.metrics, "samples": len(samples)},
    )
    registry.set_alias(
        SERVING_ALIASES["long"],
        "long",
        version.version,
        reason=f"{reason}: {len(samples)} samples",
        actor="lsat-trainer",
    )
    log.info("long adapter %s serving (%d samples)", version.key, len(samples))
    return version


def refresh_long(retrainer: Retrainer, window_id: int, *, reason: str) -> AdapterVersion:
    """Retrain the long adapter on the last ``long_bootstrap_windows`` windows the registry knows
    (learnt by a short or long version, up to ``window_id``) and promote it; the previous long
    version stays in the registry."""
    registry = retrainer.registry
    known = [*registry.list(kind="short"), *registry.list(kind="long")]
    seen = {int(w) for v in known for w in v.window_ids}
    recent = sorted(w for w in seen | {window_id} if w <= window_id)
    window_ids = recent[-retrainer.settings.trainer.long_bootstrap_windows :]
    samples = [s for w in window_ids for s in retrainer.store.window_samples(w)]
    log.info("refreshing the long adapter on windows %s (%s)", window_ids, reason)
    return bootstrap_long(
        retrainer.settings,
        retrainer.registry,
        samples=samples,
        window_ids=window_ids,
        titles=retrainer.titles_for(samples),
        train_fn=retrainer.train_fn,
        reason=reason,
    )
