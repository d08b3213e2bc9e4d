"""The long-term adapter: trained once on many windows (or a dataset slice), then frozen.

It is refreshed only by an explicit policy (every K windows, or sustained loss drift) or by
command (``lsat trainer --bootstrap-long``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsat.adapters.lifecycle.artifacts import load_adapter
from lsat.adapters.lifecycle.hybrid_features import rate_columns
from lsat.adapters.lifecycle.publication import HYBRID_METRIC, SERVING_ALIASES
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.trainer.child import train_in_child
from lsat.adapters.trainer.combiner import HYBRID_FIT_METRIC, fit_rates_only
from lsat.adapters.trainer.helpers import ACTOR, TrainFn, child_job, split_window
from lsat.adapters.trainer.oos_rows import Rows
from lsat.adapters.trainer.options import QualityOptions
from lsat.adapters.trainer.pool import TitleCache
from lsat.core.settings import Settings
from lsat.data.types import Sample
from lsat.stream.store import SampleStore

__all__ = ["LongRefresher", "bootstrap_long", "long_refresh_due", "rates_only_metrics"]

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
    options: QualityOptions | None = None,
) -> AdapterVersion:
    """Train a long adapter on ``samples`` (or the store's ``window_ids``; default the first
    ``long_bootstrap_windows`` closed ones) with the options' prompt, register it with a
    rates-only combiner fitted on the same samples (:func:`rates_only_metrics`) and promote it
    to ``serving-long``."""
    if samples is None:
        if store is None:
            raise ValueError("bootstrap_long needs samples, or a store (with optional window_ids)")
        if window_ids is None:
            closed = sorted(w.id for w in store.last_closed_windows(10_000))
            window_ids = closed[: settings.trainer.long_bootstrap_windows]
        samples = [s for w in window_ids for s in store.window_samples(w)]
    if titles is None:
        titles = {} if store is None else {i: it.title for i, it in store.catalogue().items()}
    samples = sorted(samples, key=lambda s: s.timestamp)
    if len(samples) < 2:
        raise ValueError(f"need at least 2 samples to train a long adapter, got {len(samples)}")
    train, validation = split_window(samples, settings.trainer.validation_fraction)
    label = "data" if window_ids is None else f"{min(window_ids)}-{max(window_ids)}"
    metadata = {"windows": list(window_ids or [])}
    hybrid = rates_only_metrics(samples, window_ids, options or QualityOptions())
    job = child_job(settings, "long", train, validation, titles, label, metadata, options)
    result = train_fn(job)
    # refuses a corrupt, non-finite or swapped folder before registering
    load_adapter(Path(result.path), expected_sha256=result.sha256)
    version = registry.register(
        "long",
        path=result.path,
        sha256=result.sha256,
        window_id=list(window_ids) if window_ids else None,
        trigger="bootstrap" if reason == "bootstrap" else "refresh",
        metrics={**result.metrics, "samples": len(samples), **hybrid},
    )
    registry.set_alias(
        SERVING_ALIASES["long"],
        "long",
        version.version,
        reason=f"{reason}: {len(samples)} samples",
        actor=ACTOR,
    )
    log.info("long adapter %s serving (%d samples)", version.key, len(samples))
    return version


def rates_only_metrics(
    samples: Sequence[Sample], window_ids: Sequence[int] | None, options: QualityOptions
) -> dict[str, Any]:
    """The long version's ``hybrid`` / ``hybrid_fit`` metrics: a rates-only combiner fitted on
    the samples it trains on (their stored rate features are as of just before each event, so
    the combiner scores later windows out of sample). It serves until a short version brings
    its own. ``{}`` when there is none (too few samples, one class): the α ensemble serves."""
    windows = sorted(int(w) for w in window_ids) if window_ids else []
    n = len(samples)
    where = f"windows {windows[0]}..{windows[-1]}" if windows else "the long adapter's samples"
    rows = Rows(
        rate_columns(samples),
        np.array([s.label for s in samples], dtype=int),
        [s.event_id for s in samples],
        [where] * n,
    )
    combiner = fit_rates_only(rows, options.combiner_min_rows, where)
    if isinstance(combiner, str):
        log.info("no rates-only combiner with the long adapter: %s", combiner)
        return {}
    fit = {"windows": [str(w) for w in windows], "rows": n, "note": combiner.note}
    return {HYBRID_METRIC: combiner.to_dict(), HYBRID_FIT_METRIC: fit}


class LongRefresher:
    """The long-adapter policy in the loop: retrain it on recent windows when it is due."""

    def __init__(
        self,
        settings: Settings,
        registry: RegistryStore,
        store: SampleStore,
        titles: TitleCache,
        train_fn: TrainFn = train_in_child,
        options: QualityOptions | None = None,
    ) -> None:
        self.settings, self.registry, self.store = settings, registry, store
        self.titles, self.train_fn = titles, train_fn
        self.options = options

    def windows_since_long(self, long: AdapterVersion) -> int:
        """How many windows short versions learnt since ``long`` was registered."""
        since = [v for v in self.registry.list(kind="short") if v.created_at > long.created_at]
        return len({str(w) for v in since for w in v.window_ids})

    def refresh_if_due(self, window_id: int, drift_detected: bool) -> AdapterVersion | None:
        """Retrain and promote the long adapter when :func:`long_refresh_due` says so."""
        long = self.registry.resolve(SERVING_ALIASES["long"])
        if long is None:
            return None
        windows_since = self.windows_since_long(long)
        if not long_refresh_due(self.settings, windows_since, drift_detected):
            return None
        why = "loss drift" if drift_detected else f"{windows_since} windows"
        return self.refresh(window_id, reason=f"refresh after {why}")

    def refresh(self, window_id: int, *, reason: str) -> AdapterVersion:
        """Retrain the long adapter on the last ``long_bootstrap_windows`` windows the registry
        knows (learnt by a short or long version, up to ``window_id``) and promote it; the
        previous long version stays in the registry."""
        known = [*self.registry.list(kind="short"), *self.registry.list(kind="long")]
        seen = {int(w) for v in known for w in v.window_ids}
        recent = sorted(w for w in seen | {window_id} if w <= window_id)
        window_ids = recent[-self.settings.trainer.long_bootstrap_windows :]
        samples = [s for w in window_ids for s in self.store.window_samples(w)]
        log.info("refreshing the long adapter on windows %s (%s)", window_ids, reason)
        return bootstrap_long(
            self.settings,
            self.registry,
            samples=samples,
            window_ids=window_ids,
            titles=self.titles.titles_for(samples),
            train_fn=self.train_fn,
            reason=reason,
            options=self.options,
        )
