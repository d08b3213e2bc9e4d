"""Which update strategies exist and which adapters each period trains (pure bookkeeping).

Periods are numbered 1..P. After *updating* with period t, every strategy is tested on all of
period t+1, so updates happen for t = 1..P-1. The LoRA adapters are shared between strategies
("roles"): one adapter per role and period, and jobs with the same training data and starting
point are trained only once (e.g. in period 1 static, short, fine-tuning and full retraining
all train a fresh LoRA on period 1).

Roles and the data they train on at update period t:

=========  ===================================  ==========================================
role       trained when                         on
=========  ===================================  ==========================================
static     t = 1 only                           period 1, from scratch, then frozen
short      every t it is needed                 period t, from scratch
full       every t                              periods 1..t (capped), from scratch
finetune   every t                              period t, continuing the previous one
long       t = m (``long_periods``)             periods 1..m (capped), then frozen
short_warm every t >= m                         period t, starting from the long adapter
=========  ===================================  ==========================================

Strategies that need the long adapter (``long``, ``lsat-*``, ``short-warm``, ``hybrid-warm``)
are undefined before it exists: they get no result for test periods 2..m (reported as n/a).
``hybrid`` combines the rates with the short adapter's logit, and with the long one's once it
exists (see :func:`roles_at`); ``hybrid-warm`` combines them with the long and the warm-started
short adapter's logits (what the live system serves with ``--short-init long``);
``rate-stack`` is a non-LLM baseline.

>>> [job.role for job in plan_updates(1, n_periods=4, long_periods=2, strategies=STRATEGIES)]
['static', 'short', 'full', 'finetune']
>>> [job.share_key for job in plan_updates(1, 4, 2, STRATEGIES)]  # all four are the same job
[((1,), None), ((1,), None), ((1,), None), ((1,), None)]
>>> [(job.role, job.train_periods) for job in plan_updates(2, 4, 2, ["long", "short"])]
[('short', (2,)), ('long', (1, 2))]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lsat.adapters.model.errors import AdapterError

__all__ = [
    "BASELINE_STRATEGIES",
    "LLM_STRATEGIES",
    "LONG_BASED_STRATEGIES",
    "ROLES",
    "STRATEGIES",
    "AdapterJob",
    "ConfigMismatchError",
    "ExperimentError",
    "check_periods",
    "default_long_periods",
    "describe_plan",
    "evaluated_periods",
    "parse_strategies",
    "plan_updates",
    "roles_at",
    "roles_needed",
    "roles_of",
    "second_half_periods",
]


class ExperimentError(AdapterError, ValueError):
    """Root of the experiment runner's errors; the message names the bad value."""


class ConfigMismatchError(ExperimentError):
    """An output folder holds a run with another configuration, so it cannot be resumed."""


LLM_STRATEGIES: tuple[str, ...] = (
    "static",
    "full",
    "finetune",
    "short",
    "long",
    "lsat-en",
    "lsat-ta-delta",
    "lsat-ta-ab",
    "short-warm",
    "hybrid",
    "hybrid-warm",
)
BASELINE_STRATEGIES: tuple[str, ...] = (
    "user-rate",
    "item-rate",
    "rate-sum",
    "history-rate",
    "mf",
    "rate-stack",
)
STRATEGIES: tuple[str, ...] = LLM_STRATEGIES + BASELINE_STRATEGIES
LONG_BASED_STRATEGIES: frozenset[str] = frozenset(
    {"long", "lsat-en", "lsat-ta-delta", "lsat-ta-ab", "short-warm", "hybrid-warm"}
)
ROLES: tuple[str, ...] = ("static", "short", "full", "finetune", "long", "short_warm")

_ROLES_OF_STRATEGY: dict[str, tuple[str, ...]] = {
    "static": ("static",),
    "full": ("full",),
    "finetune": ("finetune",),
    "short": ("short",),
    "long": ("long",),
    "lsat-en": ("long", "short"),
    "lsat-ta-delta": ("long", "short"),
    "lsat-ta-ab": ("long", "short"),
    "short-warm": ("long", "short_warm"),
    "hybrid": ("long", "short"),
    "hybrid-warm": ("long", "short_warm"),
}


def parse_strategies(text: str | Iterable[str]) -> tuple[str, ...]:
    """Validate a comma list (or an iterable) of strategy names; ``all`` means every one.

    The result keeps the canonical order of :data:`STRATEGIES` and has no duplicates.

    >>> parse_strategies("short, lsat-en,short")
    ('short', 'lsat-en')
    >>> parse_strategies("all") == STRATEGIES
    True
    >>> parse_strategies("short,lsta-en")
    Traceback (most recent call last):
    ...
    lsat.adapters.experiment.strategies.ExperimentError: unknown strategy 'lsta-en'; choose from ...
    """
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    if not names:
        raise ExperimentError("no strategy given; choose from " + ", ".join(STRATEGIES))
    if "all" in names:
        return STRATEGIES
    for name in names:
        if name not in STRATEGIES:
            raise ExperimentError(
                f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)} (or 'all')"
            )
    return tuple(s for s in STRATEGIES if s in names)


def roles_of(strategy: str) -> tuple[str, ...]:
    """The adapter roles a strategy scores with (none for the non-LLM baselines).

    The last role is the adapter that scores a single-adapter strategy (``short-warm`` also
    needs the long adapter it starts from).

    >>> roles_of("lsat-en"), roles_of("mf"), roles_of("short-warm")
    (('long', 'short'), (), ('long', 'short_warm'))
    """
    if strategy not in STRATEGIES:
        raise ExperimentError(f"unknown strategy {strategy!r}")
    return _ROLES_OF_STRATEGY.get(strategy, ())


def roles_at(strategy: str, update_period: int, long_periods: int) -> tuple[str, ...]:
    """The roles a strategy scores with after updating with ``update_period``.

    Long-based strategies have none before the long adapter exists; the hybrid uses the
    short adapter alone until then.

    >>> roles_at("hybrid", 1, 2), roles_at("hybrid", 2, 2), roles_at("short-warm", 1, 2)
    (('short',), ('long', 'short'), ())
    >>> roles_at("hybrid-warm", 1, 2), roles_at("hybrid-warm", 2, 2)
    ((), ('long', 'short_warm'))
    """
    roles = roles_of(strategy)
    if update_period >= long_periods:
        return roles
    if strategy in LONG_BASED_STRATEGIES:
        return ()
    return tuple(role for role in roles if role != "long")


def roles_needed(strategies: Iterable[str], update_period: int, long_periods: int) -> set[str]:
    """Roles whose adapter must exist after updating with ``update_period``.

    Long-based strategies need nothing before the long adapter exists (t < m).

    >>> sorted(roles_needed(["lsat-en"], 1, 2)), sorted(roles_needed(["lsat-en"], 2, 2))
    ([], ['long', 'short'])
    """
    needed: set[str] = set()
    for strategy in strategies:
        needed.update(roles_at(strategy, update_period, long_periods))
    return needed


@dataclass(frozen=True, slots=True)
class AdapterJob:
    """One adapter to train at an update period.

    ``continues`` means "start from the current adapter of this role" (fine-tuning),
    ``init_role`` "start from the current adapter of that role" (a short adapter warm-started
    from the long one); the runner resolves them to concrete adapter names. Every job trains
    on at most ``max_train_samples`` of the most recent samples of its periods (the runner's
    cap; it only bites for the growing sets of ``full`` and ``long``).
    """

    role: str
    update_period: int
    train_periods: tuple[int, ...]
    continues: bool = False
    init_role: str | None = None

    @property
    def share_key(self) -> tuple[tuple[int, ...], str | None]:
        """Jobs with equal keys train the same adapter (the runner trains it once).

        A continuing job in period 1 has nothing to continue from, so it starts fresh.
        """
        start = f"{self.role}@{self.update_period - 1}" if self.continues else None
        if self.continues and self.update_period == 1:
            start = None
        if self.init_role is not None:
            start = f"{self.init_role}@{self.update_period}"
        return self.train_periods, start

    @property
    def adapter_name(self) -> str:
        """A readable, peft-safe adapter name, e.g. ``p03_short``."""
        return f"p{self.update_period:02d}_{self.role}"


def plan_updates(
    update_period: int,
    n_periods: int,
    long_periods: int,
    strategies: Iterable[str],
) -> list[AdapterJob]:
    """The adapter jobs of one update period, in role order (static, short, full, …, long).

    >>> [(j.role, j.train_periods, j.continues) for j in plan_updates(3, 5, 2, ["finetune"])]
    [('finetune', (3,), True)]
    >>> plan_updates(4, 4, 2, ["short"])
    Traceback (most recent call last):
    ...
    lsat.adapters.experiment.strategies.ExperimentError: update period 4 out of range 1..3 ...
    """
    check_periods(n_periods, long_periods)
    if not 1 <= update_period < n_periods:
        raise ExperimentError(
            f"update period {update_period} out of range 1..{n_periods - 1} "
            f"(the last period {n_periods} is only tested on)"
        )
    needed = roles_needed(strategies, update_period, long_periods)
    t = update_period
    history = tuple(range(1, t + 1))
    jobs: list[AdapterJob] = []
    if "static" in needed and t == 1:
        jobs.append(AdapterJob("static", t, (1,)))
    if "short" in needed:
        jobs.append(AdapterJob("short", t, (t,)))
    if "full" in needed:
        jobs.append(AdapterJob("full", t, history))
    if "finetune" in needed:
        jobs.append(AdapterJob("finetune", t, (t,), continues=True))
    if "long" in needed and t == long_periods:
        jobs.append(AdapterJob("long", t, history))
    if "short_warm" in needed:  # after long: at t = m it starts from the long trained now
        jobs.append(AdapterJob("short_warm", t, (t,), init_role="long"))
    return jobs


def check_periods(n_periods: int, long_periods: int) -> None:
    """Raise :class:`ExperimentError` unless 2 <= P and 1 <= m < P.

    >>> check_periods(20, 10)
    >>> check_periods(4, 4)
    Traceback (most recent call last):
    ...
    lsat.adapters.experiment.strategies.ExperimentError: long_periods 4 must be in 1..3 ...
    """
    if n_periods < 2:
        raise ExperimentError(f"periods {n_periods} must be >= 2 (train on one, test on the next)")
    if not 1 <= long_periods < n_periods:
        raise ExperimentError(
            f"long_periods {long_periods} must be in 1..{n_periods - 1} "
            f"(the long adapter needs a later period to be tested on)"
        )


def evaluated_periods(n_periods: int) -> list[int]:
    """Periods that get tested: 2..P (each after updating with the one before).

    >>> evaluated_periods(4)
    [2, 3, 4]
    """
    return list(range(2, n_periods + 1))


def second_half_periods(n_periods: int) -> list[int]:
    """The test periods averaged in the summary: the last ⌊P/2⌋ (paper: 11..20 of 20).

    >>> second_half_periods(20) == list(range(11, 21)), second_half_periods(5)
    (True, [4, 5])
    """
    return list(range(n_periods - n_periods // 2 + 1, n_periods + 1))


def default_long_periods(n_periods: int) -> int:
    """m = half the periods (at least 1): the paper's 10 of 20.

    >>> default_long_periods(20), default_long_periods(3)
    (10, 1)
    """
    return max(1, n_periods // 2)


def _span(periods: tuple[int, ...]) -> str:
    """``(1, 2, 3)`` → ``1-3``; ``(4,)`` → ``4``."""
    return str(periods[0]) if len(periods) == 1 else f"{periods[0]}-{periods[-1]}"


def describe_plan(n_periods: int, long_periods: int, strategies: Sequence[str]) -> list[str]:
    """One line per update period: the adapters trained, roles sharing one joined by ``=``.

    >>> describe_plan(3, 1, ["short", "long", "finetune"])
    ['period 1: short=finetune=long (1)', 'period 2: short (2), finetune (2, continued)']
    >>> describe_plan(3, 2, ["short-warm"])
    ['period 1: nothing', 'period 2: long (1-2), short_warm (2, from long)']
    """
    lines = []
    for t in range(1, n_periods):
        groups: dict[tuple, list[AdapterJob]] = {}
        for job in plan_updates(t, n_periods, long_periods, strategies):
            groups.setdefault(job.share_key, []).append(job)
        parts = []
        for (periods, start), jobs in groups.items():
            roles = "=".join(j.role for j in jobs)
            how = f", from {jobs[0].init_role}" if jobs[0].init_role else ", continued"
            parts.append(f"{roles} ({_span(periods)}{how if start else ''})")
        lines.append(f"period {t}: " + (", ".join(parts) if parts else "nothing"))
    return lines
