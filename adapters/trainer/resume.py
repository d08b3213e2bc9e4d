"""Re-delivered retrain requests: finish a job whose trainer died after registering its adapter.

A job registers the new short version first and moves ``serving-short`` afterwards. A trainer
killed in between leaves a *candidate* that no alias ever pointed at; the request was not
committed, so it comes back. Instead of calling that a duplicate (and never promoting it), the
next trainer verifies the folder against the registry (sha256, finite weights) and promotes it.

:func:`resume_decision` is the pure part:

>>> resume_decision("candidate", ever_served=False, serving_version=None, version=3)
'promote'
>>> resume_decision("candidate", ever_served=False, serving_version=4, version=3)
'superseded'
>>> resume_decision("candidate", ever_served=True, serving_version=3, version=3)
'republish'
>>> resume_decision("rejected", ever_served=False, serving_version=None, version=3)
'duplicate'
"""

from __future__ import annotations

from collections.abc import Sequence

from lsat.adapters.lifecycle.publication import SERVING_ALIASES
from lsat.adapters.lifecycle.registry import AdapterVersion, AliasNotFound, RegistryStore
from lsat.adapters.model.errors import AdapterArtifactError
from lsat.adapters.trainer.helpers import RetrainOutcome, split_window
from lsat.adapters.trainer.pool import AdapterPool, load_verified
from lsat.adapters.trainer.promotion import Promoter
from lsat.adapters.trainer.publisher import ServingPublisher
from lsat.data.types import Sample
from lsat.stream.triggers import RetrainRequest

__all__ = ["Resumer", "registered_short", "resume_decision"]


def resume_decision(
    status: str, *, ever_served: bool, serving_version: int | None, version: int
) -> str:
    """What to do with a window's registered short version on a re-delivered request.

    ``republish`` (it serves now: publish again, the trainer may have died before publishing),
    ``duplicate`` (rejected, or served once and replaced since), ``superseded`` (a newer short
    serves already: promoting an older one would go back in time) or ``promote``.
    """
    if status == "rejected":
        return "duplicate"
    if serving_version == version:
        return "republish"
    if ever_served:
        return "duplicate"
    if serving_version is not None and serving_version > version:
        return "superseded"
    return "promote"


def registered_short(registry: RegistryStore, window_id: int) -> AdapterVersion | None:
    """The newest short version already registered for this window, if any."""
    for version in registry.list(kind="short"):
        if str(window_id) in {str(w) for w in version.window_ids}:
            return version
    return None


def _ever_served(registry: RegistryStore, version: AdapterVersion) -> bool:
    try:
        history = registry.alias_history(SERVING_ALIASES["short"])
    except AliasNotFound:
        return False
    return any(change.target == version.key for change in history)


class Resumer:
    """Finishes (or skips) the jobs of windows whose short version is already registered."""

    def __init__(
        self,
        registry: RegistryStore,
        pool: AdapterPool,
        promoter: Promoter,
        publisher: ServingPublisher,
        *,
        validation_fraction: float,
    ) -> None:
        self.registry, self.pool = registry, pool
        self.promoter, self.publisher = promoter, publisher
        self.validation_fraction = validation_fraction

    def resume(
        self, request: RetrainRequest, version: AdapterVersion, samples: Sequence[Sample]
    ) -> RetrainOutcome:
        """Re-publish, skip, refuse (folder fails its check) or promote ``version``."""
        window_id = request.window_id
        serving_short = self.registry.resolve(SERVING_ALIASES["short"])
        decision = resume_decision(
            version.status,
            ever_served=_ever_served(self.registry, version),
            serving_version=None if serving_short is None else serving_short.version,
            version=version.version,
        )
        if decision == "republish":
            serving = self.publisher.publish_current()
            return RetrainOutcome(
                window_id, "duplicate", f"{version.key} serves; re-published", version, serving
            )
        if decision != "promote":
            reason = f"already registered as {version.key} ({decision})"
            return RetrainOutcome(window_id, "duplicate", reason, version)
        try:
            load_verified(version)
        except AdapterArtifactError as exc:
            reason = f"refused on resume: {exc}"
            rejected = self.registry.reject("short", version.version, reason[:1000])
            return RetrainOutcome(window_id, "rejected", reason, rejected)
        self.pool.use_titles_for(samples)
        _, validation = split_window(samples, self.validation_fraction)
        long = self.registry.resolve(SERVING_ALIASES["long"])
        reason = (
            f"window {window_id} ({request.trigger}): resumed {version.key}, registered by a "
            f"trainer that stopped before promoting it"
        )
        serving = self.promoter.promote(version, long, list(validation), reason)
        return RetrainOutcome(window_id, "promoted", reason, version, serving)
