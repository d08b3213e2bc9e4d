"""Publishing what serves: the registry's serving aliases as one :class:`ServingSet` message."""

from __future__ import annotations

from collections.abc import Callable

from lsat.adapters.lifecycle.publication import ServingSet, current_serving_set
from lsat.adapters.lifecycle.registry import RegistryStore
from lsat.adapters.trainer.metrics import TrainerMetrics

__all__ = ["ServingPublisher"]


class ServingPublisher:
    """Reads the serving set from the registry, updates the gauges, hands it to ``publish``.

    ``publish`` sends it on ``adapter.versions`` in the service; ``None`` publishes nowhere
    (the gauges still move).
    """

    def __init__(
        self,
        registry: RegistryStore,
        metrics: TrainerMetrics,
        publish: Callable[[ServingSet], None] | None = None,
    ) -> None:
        self.registry, self.metrics, self.publish = registry, metrics, publish

    def publish_current(self) -> ServingSet | None:
        """Publish the serving set the registry aliases describe; ``None`` when nothing serves."""
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
