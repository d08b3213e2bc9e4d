"""The retry policy (pure): backoff schedule, the cap, reasons, stopping while waiting."""

from __future__ import annotations

import math
from typing import Any

import pytest

from lsat.adapters.trainer.errors import TrainerChildFailed
from lsat.adapters.trainer.retry import (
    GaveUp,
    RetryInterrupted,
    RetryPolicy,
    attempt,
    failure_reason,
)


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (RetryPolicy(max_attempts=5, backoff_s=1.0, factor=2.0, max_backoff_s=60.0), [1, 2, 4, 8]),
        (
            RetryPolicy(max_attempts=5, backoff_s=10.0, factor=3.0, max_backoff_s=50.0),
            [10, 30, 50, 50],
        ),
        (RetryPolicy(max_attempts=3, backoff_s=0.0), [0, 0]),
        (RetryPolicy(max_attempts=4, backoff_s=5.0, factor=1.0), [5, 5, 5]),
    ],
)
def test_backoff_grows_exponentially_up_to_the_cap(
    policy: RetryPolicy, delays: list[float]
) -> None:
    assert [policy.delay_s(n) for n in range(1, policy.max_attempts)] == delays


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"max_attempts": 0}, "max_attempts must be an int >= 1, got 0"),
        ({"max_attempts": 2.5}, "got 2.5"),
        ({"backoff_s": -1.0}, "backoff_s must be a finite number >= 0, got -1.0"),
        ({"max_backoff_s": math.inf}, "max_backoff_s must be a finite number >= 0, got inf"),
        ({"factor": 0.5}, "factor must be a finite number >= 1, got 0.5"),
    ],
)
def test_bad_policy_names_the_value(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        RetryPolicy(**changes)


class _FailsTimes:
    """Raises ``error`` on the first ``failures`` calls, then returns ``"done"``."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


@pytest.mark.parametrize(
    ("failures", "error", "result", "calls", "waits"),
    [
        (0, RuntimeError("x"), "done", 1, []),
        (2, TrainerChildFailed("child died"), "done", 3, [1.0, 2.0]),
        (
            3,
            TrainerChildFailed("child died"),
            GaveUp("training_failed", "TrainerChildFailed: child died", 3),
            3,
            [1.0, 2.0],
        ),
        (9, KeyError("w"), GaveUp("internal_error:KeyError", "KeyError: 'w'", 3), 3, [1.0, 2.0]),
    ],
)
def test_attempts_are_capped_and_waits_follow_the_policy(
    failures: int, error: Exception, result: object, calls: int, waits: list[float]
) -> None:
    job = _FailsTimes(failures, error)
    waited: list[float] = []
    outcome = attempt(
        job, RetryPolicy(max_attempts=3, backoff_s=1.0), wait=lambda s: waited.append(s) or False
    )
    assert (outcome, job.calls, waited) == (result, calls, waits)


def test_a_stop_while_waiting_gives_nothing_up() -> None:
    job = _FailsTimes(5, TrainerChildFailed("child died"))
    with pytest.raises(RetryInterrupted, match="after 1 failures"):
        attempt(job, RetryPolicy(max_attempts=3), wait=lambda s: True, what="window 4")
    assert job.calls == 1


def test_keyboard_interrupt_is_not_swallowed() -> None:
    job = _FailsTimes(1, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        attempt(job, RetryPolicy(), wait=lambda s: False)


def test_reasons() -> None:
    assert failure_reason(TrainerChildFailed("x"))[0] == "training_failed"
    assert failure_reason(ValueError("x")) == ("internal_error:ValueError", "ValueError: x")
