"""Hot swap: load a published serving set under fresh names, verify it, swap, then clean up.

:class:`AdapterSwapper` applies one :class:`~lsat.adapters.lifecycle.publication.ServingSet`:
adapters already loaded with the same version and sha256 are reused; new ones are fetched by
their artifact URI (:class:`~lsat.adapters.lifecycle.artifact_stores.ArtifactResolver`: the
trainer's folder, or a copy from a shared store, verified and cached under
``$LSAT_HOME/cache/artifacts``), read with :func:`lsat.adapters.lifecycle.artifacts.load_adapter`
(sha256 + finite checks) against the message's sha256, loaded under a fresh name and probed with
one prompt (the score must be finite). Only then is the set swapped in; the adapters it no
longer uses are retired: freed at once when idle, else by the last request still using them
(never under a running request; counted in ``lsat_hot_swap_deferred_frees_total``). Anything
refused is logged and counted, and the old set keeps serving.

:class:`VersionsConsumer` reads ``adapter.versions`` in a thread with manual partition
assignment (no consumer group: every scorer sees every message). One bad message never stops it;
if the thread dies anyway (the client fails), :attr:`VersionsConsumer.alive` turns False and the
scorer's ``/healthz`` and ``/readyz`` fail, so a supervisor restarts it.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from lsat.adapters.lifecycle.adapter_prompt import AdapterPrompt, prompt_of
from lsat.adapters.lifecycle.artifact_stores import ArtifactResolver
from lsat.adapters.lifecycle.artifacts import load_adapter
from lsat.adapters.lifecycle.publication import AdapterRef, PublicationError, ServingSet
from lsat.adapters.model.errors import AdapterError
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.serving.metrics import ServingMetrics
from lsat.adapters.serving.state import LoadedSet, ServingError, ServingState
from lsat.core.kinds import ADAPTER_KINDS
from lsat.core.settings import KafkaSettings, Settings
from lsat.data.types import CollaborativeFeatures, Sample

if TYPE_CHECKING:
    from kafka import KafkaConsumer

__all__ = ["AdapterRefused", "AdapterSwapper", "VersionsConsumer"]

log = logging.getLogger(__name__)

PROBE = Sample(
    "probe", "probe", "probe-item", 0, 1, ("probe-a", "probe-b"), (1, 0),
    CollaborativeFeatures(1, 2, 1, 2, 2, 4),
)  # fmt: skip
"""A fixed prompt every new adapter must score to a finite probability before it serves
(with like counts, so prompts with collaborative hints can be built too)."""


class AdapterRefused(ServingError):
    """A published adapter failed a check (missing, sha256, non-finite, probe); nothing changed."""


class AdapterSwapper:
    """Applies serving sets to a recommender; every model call holds ``model_lock``.

    ``artifacts`` fetches each new adapter by its URI (verified, cached by sha256); by default
    only local folders (``file://`` and plain paths) can be read.
    """

    def __init__(
        self,
        recommender: LoraRecommender,
        state: ServingState,
        model_lock: threading.RLock,
        metrics: ServingMetrics,
        artifacts: ArtifactResolver | None = None,
    ) -> None:
        self.recommender = recommender
        self.state = state
        self.model_lock = model_lock
        self.metrics = metrics
        self.artifacts = artifacts or ArtifactResolver(Settings().cache_dir / "artifacts")
        self._counter = itertools.count()
        self._apply_lock = threading.Lock()

    def apply(self, serving: ServingSet) -> LoadedSet | None:
        """Serve ``serving``; return the new set, or ``None`` when it equals the current one.

        Raises :class:`AdapterRefused` (after counting it) when any adapter fails its checks.
        """
        with self._apply_lock:
            current = self.state.current
            loaded: dict[str, str] = {}
            prompts: dict[str, AdapterPrompt] = {}
            fresh: list[str] = []
            refs = [ref for ref in (serving.long, serving.short, serving.merged) if ref]
            try:
                for ref in refs:
                    reuse = _reusable(current, ref)
                    if reuse is None or current is None:
                        reuse, prompts[ref.kind] = self._load(ref)
                        fresh.append(reuse)
                    else:
                        prompts[ref.kind] = current.prompt(ref.kind)
                    loaded[ref.kind] = reuse
            except (AdapterError, OSError, ValueError) as exc:
                self._drop(fresh)
                self.metrics.swaps.labels(outcome="refused").inc()
                log.error("refused serving set %s: %s", serving.keys, exc)
                raise AdapterRefused(f"serving set {serving.keys} refused: {exc}") from exc
            new = LoadedSet(
                names=loaded,
                versions={ref.kind: ref.version for ref in refs},
                alpha=serving.alpha,
                merge_weight=serving.merge_weight,
                window_id=serving.window_id,
                published_s=serving.published_s,
                shas={ref.kind: ref.sha256 for ref in refs},
                prompts=prompts,
                hybrid=serving.hybrid,
            )
            if current is not None and current.key() == new.key() and not fresh:
                self.metrics.swaps.labels(outcome="same").inc()
                return None
            old = self.state.swap(new)
            self._record(new)
            if old is not None:
                stale = sorted(set(old.names.values()) - set(new.names.values()))
                deferred = self.state.retire(stale, self._drop)
                if deferred:
                    self.metrics.deferred_frees.inc(deferred)
                    log.info("keeping %d retired adapter(s) until their requests end", deferred)
            log.info("serving %s (alpha %.2f)", dict(new.versions), new.alpha)
            return new

    def _load(self, ref: AdapterRef) -> tuple[str, AdapterPrompt]:
        folder = self.artifacts.fetch(ref.location, ref.sha256)
        artifact = load_adapter(folder, expected_sha256=ref.sha256)
        prompt = prompt_of(artifact.metadata)
        name = f"{ref.kind}-v{ref.version}-{next(self._counter)}"
        with self.model_lock:
            self.recommender.set_lora_state(name, artifact.state, artifact.config)
            try:
                self.recommender.prompt_format = prompt.prompt_format
                self.recommender.item_noun = prompt.item_noun
                probe = float(self.recommender.score(name, [PROBE])[0])
            except BaseException:
                self.recommender.delete_adapter(name)
                raise
        if not math.isfinite(probe):
            self._drop([name])
            raise AdapterRefused(f"{ref.kind}/v{ref.version}: probe score is {probe}")
        return name, prompt

    def _drop(self, names: list[str]) -> None:
        with self.model_lock:
            for name in names:
                if name in self.recommender.adapter_names:
                    self.recommender.delete_adapter(name)
        self.metrics.pending_frees.set(len(self.state.pending_free()))

    def _record(self, new: LoadedSet) -> None:
        for kind in ADAPTER_KINDS:
            self.metrics.active_version.labels(kind=kind).set(new.versions.get(kind, 0))
        self.metrics.alpha.set(new.alpha)
        self.metrics.swaps.labels(outcome="ok").inc()
        if new.published_s is not None:
            self.metrics.swap_latency.observe(max(0.0, new.served_s - new.published_s))


def _reusable(current: LoadedSet | None, ref: AdapterRef) -> str | None:
    """The loaded name of ``ref`` in ``current`` when the same version and sha256 serve."""
    if current is None or ref.kind not in current.names:
        return None
    same = (
        current.versions.get(ref.kind) == ref.version and current.shas.get(ref.kind) == ref.sha256
    )
    return current.names[ref.kind] if same else None


class VersionsConsumer:
    """Reads ``adapter.versions`` from its end in a daemon thread and calls ``on_set``.

    Partitions are assigned manually (``group_id=None``), so every scorer instance sees every
    message. :meth:`start` returns once the consumer is positioned, so a set published after
    it returns is never missed.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        on_set: Callable[[ServingSet], object],
        *,
        poll_timeout_ms: int = 200,
    ) -> None:
        self.kafka = kafka
        self.on_set = on_set
        self.poll_timeout_ms = poll_timeout_ms
        self.bad_messages = 0
        self.error: str | None = None
        """Why the thread died (exception class and message), ``None`` while it runs."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: KafkaConsumer | None = None

    @property
    def alive(self) -> bool:
        """True while the consumer thread runs (False before start, after stop, or dead)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout_s: float = 30.0) -> VersionsConsumer:
        """Assign every partition of the topic, seek to its end and start the thread."""
        from kafka import KafkaConsumer, TopicPartition

        from lsat.stream.kafka_client import kafka_python_kwargs

        topic = self.kafka.topics.versions
        consumer = KafkaConsumer(
            **kafka_python_kwargs(self.kafka), group_id=None, enable_auto_commit=False
        )
        deadline = time.monotonic() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            consumer.close()
            raise ServingError(f"topic {topic!r} not found on {self.kafka.bootstrap_servers}")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_end(*assigned)
        for partition in assigned:
            consumer.position(partition)
        self._consumer = consumer
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name="adapter-versions", daemon=True
        )
        self._thread.start()
        return self

    def _run(self, consumer: KafkaConsumer) -> None:
        try:
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=self.poll_timeout_ms)
                records = sorted(
                    (r for batch in batches.values() for r in batch), key=lambda r: r.timestamp
                )
                for record in records:
                    self._handle(record.value)
        except BaseException as exc:  # the thread ends: record why, health checks report it
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("adapter.versions consumer died; the scorer no longer follows swaps")

    def _handle(self, raw: bytes | None) -> None:
        if raw is None:  # a tombstone: nothing to serve, not worth a crash
            self.bad_messages += 1
            log.error("ignoring an adapter.versions message with a null value")
            return
        try:
            serving = ServingSet.from_json(raw)
        except (PublicationError, ValueError, TypeError) as exc:
            self.bad_messages += 1
            log.error("ignoring a malformed adapter.versions message: %s", exc)
            return
        try:
            self.on_set(serving)
        except ServingError as exc:
            log.error("serving set not applied: %s", exc)
        except Exception:
            log.exception("serving set %s not applied", serving.keys)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and close the consumer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._consumer is not None:
            self._consumer.close()
