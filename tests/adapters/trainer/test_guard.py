"""The promotion guard's decision at and around the margin (pure logic)."""

from __future__ import annotations

import math

import pytest

from lsat.adapters.trainer.guard import decide_promotion


def _decide(new: float | None, serving: float | None, margin: float = 0.02):
    return decide_promotion(
        new, serving, margin, window_id=7, trigger="count", alpha=0.3, has_long=True
    )


@pytest.mark.parametrize(
    ("new", "serving", "promote"),
    [
        (0.70, 0.70, True),  # equal
        (0.685, 0.70, True),  # worse, inside the margin
        (0.679, 0.70, False),  # worse by more than the margin
        (0.90, 0.70, True),  # better
        (0.60, None, True),  # nothing serving to compare with
        (None, None, True),  # first adapter, one-class validation
        (None, 0.70, False),  # undefined candidate AUC vs a real serving AUC
        (math.nan, 0.70, False),
        (0.60, math.nan, True),  # serving AUC undefined: no evidence against the candidate
    ],
)
def test_margin_decides(new: float | None, serving: float | None, promote: bool) -> None:
    assert _decide(new, serving).promote is promote


def test_reasons_name_the_numbers() -> None:
    rejected = _decide(0.5, 0.7)
    assert "0.5000" in rejected.reason and "0.7000" in rejected.reason and "0.02" in rejected.reason
    promoted = _decide(0.71, 0.7)
    assert promoted.reason.startswith("window 7 (count)") and "α=0.3" in promoted.reason
    assert "no long adapter" not in promoted.reason
    alone = decide_promotion(
        0.6, None, 0.0, window_id=1, trigger="drift", alpha=0.0, has_long=False
    )
    assert alone.reason.endswith("no long adapter yet: short alone (α=0)")
