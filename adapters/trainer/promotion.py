"""Promoting a registered short version: merge with the serving long, move aliases, publish."""

from __future__ import annotations

from pathlib import Path

from lsat.adapters.lifecycle.publication import SERVING_ALIASES, ServingSet
from lsat.adapters.lifecycle.registry import AdapterVersion, RegistryStore
from lsat.adapters.trainer.helpers import ACTOR
from lsat.adapters.trainer.merge import merge_and_register
from lsat.adapters.trainer.pool import AdapterPool
from lsat.adapters.trainer.publisher import ServingPublisher
from lsat.data.types import Sample

__all__ = ["Promoter"]


class Promoter:
    """Makes a short version serve: ``serving-short`` (and ``serving-merged``), then publishes.

    ``merge``: also build the ΔW merge of the serving long and the new short (weight chosen on
    the validation tail) into ``artifact_dir`` and point ``serving-merged`` at it.
    """

    def __init__(
        self,
        registry: RegistryStore,
        pool: AdapterPool,
        publisher: ServingPublisher,
        *,
        artifact_dir: Path,
        merge: bool = True,
    ) -> None:
        self.registry, self.pool, self.publisher = registry, pool, publisher
        self.artifact_dir, self.merge = artifact_dir, merge

    def promote(
        self,
        version: AdapterVersion,
        long: AdapterVersion | None,
        validation: list[Sample],
        reason: str,
    ) -> ServingSet | None:
        """Merge with the serving long (if enabled), move the aliases, publish the serving set."""
        window_id = int(version.window_ids[-1])
        merged, merge_weight = None, None
        if long is not None and self.merge and len(validation) > 1:
            merged, merge_weight = merge_and_register(
                self.pool, self.registry, self.artifact_dir, long, version, validation, window_id
            )
        self.registry.set_alias(
            SERVING_ALIASES["short"], "short", version.version, reason=reason, actor=ACTOR
        )
        if merged is not None and long is not None:
            self.registry.set_alias(
                SERVING_ALIASES["merged"],
                "merged",
                merged.version,
                reason=f"ΔW merge w={merge_weight} of {long.key}+{version.key}",
                actor=ACTOR,
            )
        return self.publisher.publish_current()
