"""Errors of ``lsat up`` (root: :class:`OrchestratorError`)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ChildCrashed", "OrchestratorError"]


class OrchestratorError(RuntimeError):
    """``lsat up`` could not start or keep its processes running."""


class ChildCrashed(OrchestratorError):
    """A child process exited unexpectedly; carries its exit code and the tail of its log.

    >>> str(ChildCrashed("trainer", 1, Path("/l/trainer.log"), "boom")).splitlines()[0]
    'trainer exited with code 1 (log: /l/trainer.log)'
    """

    def __init__(self, name: str, code: int, log_path: Path, tail: str) -> None:
        self.name, self.code, self.log_path, self.tail = name, code, log_path, tail
        super().__init__(f"{name} exited with code {code} (log: {log_path})\n{tail}")
