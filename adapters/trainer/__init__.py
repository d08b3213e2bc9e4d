"""The trainer of the adaptation loop: ``adapter.retrain`` in, promoted adapters out.

:func:`run_trainer` is the consumer-group loop (bounded retries, dead letters on
``adapter.retrain.dlq``); :class:`Retrainer` sequences one job over narrow collaborators
(:func:`build_retrainer` wires them): an :class:`AdapterPool` (base model, verified loading,
titles), the window evaluation, the loss-drift detector, the candidate judge, the promoter and
publisher, the resumer and the long-adapter refresher; the window evaluation also scores the
non-LLM baselines and the hybrid combiner, which :class:`.combiner.CombinerFitter` fits on earlier
windows' out-of-sample rows (refitting an accepted one on the rows up to its window).
:class:`QualityOptions` choose the prompt, the short adapter's start, early stopping and
precision. :func:`bootstrap_long` trains and promotes the long-term adapter, with a rates-only
combiner fitted on its windows that serves until a short version carries one.

Imports run one way: :mod:`.helpers` (leaf) ← collaborators ← :mod:`.job` ← :mod:`.service`.
Attributes load on first use (PEP 562): importing a light submodule such as :mod:`.retry` or
:mod:`.options` (the CLI's parser does) must not import torch and transformers, which cost every
``lsat`` command ~8 s.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lsat.adapters.trainer.child import ChildJob, ChildResult, train_in_child
    from lsat.adapters.trainer.errors import TrainerChildFailed, TrainerError
    from lsat.adapters.trainer.helpers import RetrainOutcome, split_window
    from lsat.adapters.trainer.job import Retrainer, build_retrainer
    from lsat.adapters.trainer.long import LongRefresher, bootstrap_long, long_refresh_due
    from lsat.adapters.trainer.metrics import TrainerMetrics
    from lsat.adapters.trainer.options import QualityOptions
    from lsat.adapters.trainer.pool import AdapterPool, TitleCache
    from lsat.adapters.trainer.resume import resume_decision
    from lsat.adapters.trainer.retry import RetryPolicy
    from lsat.adapters.trainer.service import run_trainer

_EXPORTS = {
    "ChildJob": "child",
    "ChildResult": "child",
    "train_in_child": "child",
    "TrainerChildFailed": "errors",
    "TrainerError": "errors",
    "RetrainOutcome": "helpers",
    "split_window": "helpers",
    "Retrainer": "job",
    "build_retrainer": "job",
    "LongRefresher": "long",
    "bootstrap_long": "long",
    "long_refresh_due": "long",
    "TrainerMetrics": "metrics",
    "QualityOptions": "options",
    "AdapterPool": "pool",
    "TitleCache": "pool",
    "resume_decision": "resume",
    "RetryPolicy": "retry",
    "run_trainer": "service",
}
"""Public name → the submodule that defines it."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AdapterPool",
    "ChildJob",
    "ChildResult",
    "LongRefresher",
    "QualityOptions",
    "RetrainOutcome",
    "Retrainer",
    "RetryPolicy",
    "TitleCache",
    "TrainerChildFailed",
    "TrainerError",
    "TrainerMetrics",
    "bootstrap_long",
    "build_retrainer",
    "long_refresh_due",
    "resume_decision",
    "run_trainer",
    "split_window",
    "train_in_child",
]
