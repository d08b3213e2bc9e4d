"""Drift detectors with River's contract: ``update(x) -> self``, ``drift_detected``, ``reset()``.

* :class:`PageHinkley`, :class:`ADWIN`: on per-sample losses (fed by the adaptation loop).
* :class:`LabelRateShift`: like-rate of recent samples vs a reference block (z-test).
* :class:`MixShift`: genre / popularity-bucket mix vs a reference block (Jensen–Shannon).
"""

from lsat.stream.drift.adwin import ADWIN
from lsat.stream.drift.base import DriftDetector
from lsat.stream.drift.label_shift import LabelRateShift, two_proportion_z
from lsat.stream.drift.mix_shift import MixShift, js_divergence
from lsat.stream.drift.page_hinkley import PageHinkley

__all__ = [
    "ADWIN",
    "DriftDetector",
    "LabelRateShift",
    "MixShift",
    "PageHinkley",
    "js_divergence",
    "two_proportion_z",
]
