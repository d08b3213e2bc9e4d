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
from pathlib import Path
from typing import TYPE_CHECKING

from lsat.adapters.lifecycle.artifacts import load_adapter
from lsat.adapters.lifecycle.publication import SERVING_ALIASES
from lsat.adapters.lifecycle.registry import AdapterVersion, AliasNotFound
from lsat.adapters.model.errors import AdapterArtifactError
from lsat.data.types import Sample
from lsat.stream.triggers import RetrainRequest

if TYPE_CHECKING:
    from lsat.adapters.trainer.job import Retrainer, RetrainOutcome

__all__ = ["resume_decision", "resume_registered"]


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


def _ever_served(retrainer: Retrainer, version: AdapterVersion) -> bool:
    try:
        history = retrainer.registry.alias_history(SERVING_ALIASES["short"])
    except AliasNotFound:
        return False
    return any(change.target == version.key for change in history)


def resume_registered(
    retrainer: Retrainer,
    request: RetrainRequest,
    version: AdapterVersion,
    samples: Sequence[Sample],
) -> RetrainOutcome:
    """Finish (or skip) the job of a window whose short ``version`` is already registered."""
    from lsat.adapters.trainer.job import RetrainOutcome, split_window

    window_id = request.window_id
    serving_short = retrainer.registry.resolve(SERVING_ALIASES["short"])
    decision = resume_decision(
        version.status,
        ever_served=_ever_served(retrainer, version),
        serving_version=None if serving_short is None else serving_short.version,
        version=version.version,
    )
    if decision == "republish":
        serving = retrainer.publish_current()
        return RetrainOutcome(
            window_id, "duplicate", f"{version.key} serves; re-published", version, serving
        )
    if decision != "promote":
        return RetrainOutcome(
            window_id, "duplicate", f"already registered as {version.key} ({decision})", version
        )
    try:
        loaded = load_adapter(Path(version.path))
        if loaded.metadata["sha256"] != version.sha256:
            raise AdapterArtifactError(
                f"{version.path}: registry sha256 {version.sha256} differs from the folder's "
                f"{loaded.metadata['sha256']}"
            )
    except AdapterArtifactError as exc:
        reason = f"refused on resume: {exc}"
        rejected = retrainer.registry.reject("short", version.version, reason[:1000])
        return RetrainOutcome(window_id, "rejected", reason, rejected)
    retrainer.recommender.titles = retrainer.titles_for(samples)
    _, validation = split_window(samples, retrainer.settings.trainer.validation_fraction)
    long = retrainer.registry.resolve(SERVING_ALIASES["long"])
    reason = (
        f"window {window_id} ({request.trigger}): resumed {version.key}, registered by a trainer "
        f"that stopped before promoting it"
    )
    serving = retrainer.promote(version, long, list(validation), reason)
    return RetrainOutcome(window_id, "promoted", reason, version, serving)
