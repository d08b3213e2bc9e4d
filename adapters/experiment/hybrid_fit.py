"""The experiment's ``hybrid`` strategy: the rate stack's logit plus the adapters' logits.

At update period t the combiner is fitted on *out-of-sample* scores only: the current
validation samples scored by the current adapters, and the test-then-train scores of the last
``hybrid_periods`` test periods (each scored by the adapters of the update before it, as a
stream would). Its base feature is the ``rate-stack`` baseline's logit, so when the adapters'
logits do not raise the out-of-fold AUC the hybrid *is* the rate stack
(:func:`lsat.adapters.model.hybrid.fit_hybrid`). Too few out-of-sample samples for the long +
short combiner fall back to the short adapter alone (``short``, or ``short_warm`` for
``hybrid-warm``), then to the rate stack.

>>> from lsat.data.collaborative import annotate_samples
>>> from lsat.data.types import Sample
>>> ss = annotate_samples([Sample(str(k), f"u{k % 3}", f"i{k % 5}", k, int(k % 5 < 2), (), ())
...                        for k in range(80)])
>>> stack = RateStack().fit(ss[:40])
>>> useless = {"short": np.full(40, 0.5)}
>>> fit_period_hybrid(stack, [OutOfSample(ss[40:], useless)], ["short"]).features
('stack',)
>>> fit_period_hybrid(stack, [OutOfSample(ss[40:44], {"short": useless["short"][:4]})],
...                   ["short"]).note
'too few out-of-sample samples (4): the rate stack alone'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lsat.adapters.experiment.baselines import RateStack
from lsat.adapters.model.hybrid import HybridCombiner, HybridError, fit_hybrid, logit
from lsat.data.types import Sample

__all__ = ["OutOfSample", "fit_period_hybrid", "hybrid_columns"]


@dataclass(frozen=True)
class OutOfSample:
    """Samples with P(like) per adapter role from adapters that never trained on them."""

    samples: Sequence[Sample]
    scores: Mapping[str, np.ndarray]


def hybrid_columns(
    stack: RateStack, samples: Sequence[Sample], scores: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The combiner's features: ``stack`` (the rate stack's logit) and ``llm:<role>`` logits."""
    columns = {"stack": stack.decision(samples)}
    columns.update({f"llm:{role}": logit(np.asarray(p)) for role, p in scores.items()})
    return columns


def _stack_only(note: str) -> HybridCombiner:
    return HybridCombiner(("stack",), (1.0,), 0.0, (0.0,), (1.0,), 0.0, note)


def fit_period_hybrid(
    stack: RateStack, blocks: Sequence[OutOfSample], roles: Sequence[str]
) -> HybridCombiner:
    """Fit on the blocks that have every role's scores; fewer roles, then none, as fallbacks."""
    attempts = [list(roles)]
    shorts = [role for role in roles if role.startswith("short")]  # short or short_warm
    if len(roles) > 1 and shorts:
        attempts.append(shorts)
    n_rows = 0
    for wanted in attempts:
        usable = [b for b in blocks if all(role in b.scores for role in wanted)]
        samples = [s for b in usable for s in b.samples]
        n_rows = max(n_rows, len(samples))
        if not samples:
            continue
        parts = [hybrid_columns(stack, b.samples, {r: b.scores[r] for r in wanted}) for b in usable]
        columns = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        labels = np.array([s.label for s in samples])
        try:
            return fit_hybrid(columns, labels, base=["stack"], extra=[f"llm:{r}" for r in wanted])
        except HybridError:
            continue
    return _stack_only(f"too few out-of-sample samples ({n_rows}): the rate stack alone")
