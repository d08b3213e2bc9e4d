"""The trainer of the adaptation loop: ``adapter.retrain`` in, promoted adapters out.

:class:`Retrainer` runs one job (test-then-train, child-process training, guard, register,
publish a :class:`lsat.adapters.lifecycle.publication.ServingSet`); :func:`run_trainer` is the
consumer-group
loop; :func:`bootstrap_long` trains and promotes the long-term adapter.
"""

from lsat.adapters.trainer.child import TINY_BASE_MODEL, ChildJob, ChildResult, train_in_child
from lsat.adapters.trainer.errors import TrainerChildFailed, TrainerError
from lsat.adapters.trainer.job import Retrainer, RetrainOutcome, split_window
from lsat.adapters.trainer.long import bootstrap_long, long_refresh_due, refresh_long
from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.adapters.trainer.resume import resume_decision, resume_registered
from lsat.adapters.trainer.service import run_trainer

__all__ = [
    "TINY_BASE_MODEL",
    "ChildJob",
    "ChildResult",
    "RetrainOutcome",
    "Retrainer",
    "TrainerChildFailed",
    "TrainerError",
    "TrainerMetrics",
    "bootstrap_long",
    "long_refresh_due",
    "refresh_long",
    "resume_decision",
    "resume_registered",
    "run_trainer",
    "split_window",
    "train_in_child",
]
