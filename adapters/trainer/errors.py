"""Errors of the trainer (all derive from :class:`lsat.adapters.model.errors.AdapterError`)."""

from __future__ import annotations

from lsat.adapters.model.errors import AdapterError

__all__ = ["TrainerChildFailed", "TrainerError"]


class TrainerError(AdapterError):
    """Root of the trainer's errors: a retrain job that could not run."""


class TrainerChildFailed(TrainerError):
    """The training child process died or raised; the request stays uncommitted (retried)."""
