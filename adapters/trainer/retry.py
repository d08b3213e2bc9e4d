"""Bounded retries of a retrain job: capped attempts, exponential backoff, then give up.

:func:`attempt` runs a job up to ``policy.max_attempts`` times, waiting
``policy.delay_s(n)`` after the n-th failure; any :class:`Exception` counts as a failure (a
:class:`TrainerChildFailed` as ``training_failed``, anything else as
``internal_error:<class>``). After the last failure it returns a :class:`GaveUp` for the caller
to dead-letter, so one bad window never blocks the ones after it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from lsat.adapters.trainer.errors import TrainerChildFailed, TrainerError
from lsat.core.settings import TrainerSettings
from lsat.stream.dead_letter import internal_error_code

__all__ = ["GaveUp", "RetryInterrupted", "RetryPolicy", "attempt", "failure_reason"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryInterrupted(TrainerError):
    """The trainer was asked to stop while waiting to retry a job (nothing was given up)."""


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries; the n-th failure waits ``backoff_s · factor^(n−1)`` (capped).

    >>> policy = RetryPolicy(max_attempts=4, backoff_s=2.0, factor=3.0, max_backoff_s=10.0)
    >>> [policy.delay_s(n) for n in (1, 2, 3)]
    [2.0, 6.0, 10.0]
    >>> RetryPolicy(max_attempts=0)
    Traceback (most recent call last):
    ...
    ValueError: max_attempts must be an int >= 1, got 0
    """

    max_attempts: int = 3
    backoff_s: float = 10.0
    factor: float = 2.0
    max_backoff_s: float = 300.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("backoff_s", "max_backoff_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError(f"factor must be a finite number >= 1, got {self.factor!r}")

    @classmethod
    def from_settings(cls, trainer: TrainerSettings) -> RetryPolicy:
        """The policy configured by ``LSAT_TRAINER_MAX_ATTEMPTS`` and ``LSAT_TRAINER_RETRY_*``.

        >>> RetryPolicy.from_settings(TrainerSettings(max_attempts=5)).max_attempts
        5
        """
        return cls(
            max_attempts=trainer.max_attempts,
            backoff_s=trainer.retry_backoff_s,
            factor=trainer.retry_backoff_factor,
            max_backoff_s=trainer.retry_backoff_max_s,
        )

    def delay_s(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt."""
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures!r}")
        return min(self.max_backoff_s, self.backoff_s * self.factor ** (failures - 1))


@dataclass(frozen=True)
class GaveUp:
    """Every attempt failed: the last failure's reason code and detail, and the attempt count."""

    reason: str
    detail: str
    attempts: int


def failure_reason(exc: BaseException) -> tuple[str, str]:
    """``(reason code, detail)`` of a failed job: ``training_failed`` when the training child
    failed, else ``internal_error:<exception class>`` (the stream worker's code).

    >>> failure_reason(TrainerChildFailed("child pid 7 died"))
    ('training_failed', 'TrainerChildFailed: child pid 7 died')
    >>> failure_reason(KeyError("window"))
    ('internal_error:KeyError', "KeyError: 'window'")
    """
    failed_child = isinstance(exc, TrainerChildFailed)
    code = "training_failed" if failed_child else internal_error_code(exc)
    return code, f"{type(exc).__name__}: {exc}"


def attempt(
    job: Callable[[], T],
    policy: RetryPolicy,
    *,
    wait: Callable[[float], bool],
    what: str = "job",
) -> T | GaveUp:
    """Run ``job`` until it returns or ``policy.max_attempts`` attempts failed.

    ``wait(seconds)`` sleeps between attempts and returns True when the trainer must stop
    (e.g. ``threading.Event.wait``); then :class:`RetryInterrupted` is raised. A
    :class:`BaseException` that is not an :class:`Exception` (``KeyboardInterrupt``) is not
    caught.
    """
    failures = 0
    while True:
        try:
            return job()
        except Exception as exc:
            failures += 1
            reason, detail = failure_reason(exc)
            if failures >= policy.max_attempts:
                log.error(
                    "%s: attempt %d/%d failed, giving up: %s",
                    what,
                    failures,
                    policy.max_attempts,
                    detail,
                )
                return GaveUp(reason, detail, failures)
            delay = policy.delay_s(failures)
            log.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1f s",
                what,
                failures,
                policy.max_attempts,
                detail,
                delay,
            )
        if wait(delay):
            raise RetryInterrupted(
                f"{what}: stopped while waiting to retry after {failures} failures"
            )
