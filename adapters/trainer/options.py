"""The trainer's quality options: prompt, item noun, short-adapter start, early stopping,
precision and the hybrid combiner's data.

These are constructor arguments (not yet ``LSAT_*`` settings): ``lsat trainer`` fills them from
its flags and passes them down to :func:`~lsat.adapters.trainer.build_retrainer` and
:func:`~lsat.adapters.trainer.bootstrap_long`.

>>> QualityOptions().short_init, QualityOptions(patience=1).patience
('scratch', 1)
>>> QualityOptions(short_init="warm")
Traceback (most recent call last):
...
ValueError: short_init='warm'; expected one of ('scratch', 'long')
"""

from __future__ import annotations

from dataclasses import dataclass

from lsat.adapters.model.prompts import DEFAULT_PROMPT_FORMAT, check_prompt_format

__all__ = ["SHORT_INITS", "QualityOptions"]

SHORT_INITS: tuple[str, ...] = ("scratch", "long")
"""How a short adapter starts: a fresh LoRA, or a copy of the serving long adapter."""


@dataclass(frozen=True)
class QualityOptions:
    """How adapters are trained and combined.

    ``prompt_format`` / ``item_noun``: the prompt every new adapter is trained with (recorded in
    its metadata; scoring always uses the adapter's own). ``short_init``: ``"long"`` starts each
    short adapter from the serving long one (warm start; its LoRA shape), ``"scratch"`` from a
    fresh LoRA. ``patience``: stop training after that many evaluations (one per epoch) without
    a better validation AUC (the best weights are kept either way); ``None`` runs every epoch.
    ``bf16``: autocast for training; ``None`` decides by capability
    (:mod:`lsat.adapters.model.precision`). ``combiner_windows``: how many recent windows of
    out-of-sample rows the hybrid and the rate stack are fitted on; ``combiner_min_rows``: fewer
    rows than this and no combiner is fitted.
    """

    prompt_format: str = DEFAULT_PROMPT_FORMAT
    item_noun: str = "movie"
    short_init: str = "scratch"
    patience: int | None = None
    bf16: bool | None = None
    combiner_windows: int = 8
    combiner_min_rows: int = 100

    def __post_init__(self) -> None:
        check_prompt_format(self.prompt_format)
        if not self.item_noun.strip():
            raise ValueError(f"item_noun={self.item_noun!r}; expected a word such as 'movie'")
        if self.short_init not in SHORT_INITS:
            raise ValueError(f"short_init={self.short_init!r}; expected one of {SHORT_INITS}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience={self.patience!r}; expected >= 1 or None")
        if self.combiner_windows < 1:
            raise ValueError(f"combiner_windows={self.combiner_windows!r}; expected >= 1")
        if self.combiner_min_rows < 10:
            raise ValueError(f"combiner_min_rows={self.combiner_min_rows!r}; expected >= 10")
