"""Child processes of ``lsat up``: start each in its own session, watch them, stop them all.

Every child runs in a new session (its own process group), so a terminal Ctrl-C reaches only
``lsat up``, which then stops the children in reverse start order: SIGTERM to the whole group
(grandchildren such as the trainer's training process included), SIGKILL after a grace period.
Output goes to one log file per child; a crash is reported with the tail of that log.

>>> spec = ChildSpec("worker", ["lsat", "worker"], urls={"metrics": "http://127.0.0.1:9108/metrics"})
>>> spec.name, spec.expected_exit
('worker', False)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lsat.apps.orchestrator.errors import ChildCrashed, OrchestratorError

__all__ = ["ChildSpec", "RunningChild", "Supervisor", "log_tail"]


@dataclass(frozen=True)
class ChildSpec:
    """One child: its name, command line, extra environment and the URLs it serves.

    ``expected_exit``: the child finishes by itself (exit 0 is success, not a crash).
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    urls: Mapping[str, str] = field(default_factory=dict)
    expected_exit: bool = False


@dataclass
class RunningChild:
    """A started child and its log file."""

    spec: ChildSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Process id (also the id of its process group)."""
        return self.process.pid

    def exit_code(self) -> int | None:
        """The exit status, or ``None`` while it runs."""
        return self.process.poll()


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file ('' when it is missing).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.log"
    >>> _ = p.write_text("a\\nb\\nc\\n")
    >>> log_tail(p, 2)
    'b\\nc'
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class Supervisor:
    """Starts children, reports the first one that died unexpectedly, stops them all."""

    def __init__(self, log_dir: Path, base_env: Mapping[str, str] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.children: list[RunningChild] = []

    def start(self, spec: ChildSpec) -> RunningChild:
        """Start one child (new session, stdout+stderr to ``log_dir/<name>.log``)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        env = {**self.base_env, **spec.env}
        with open(log_path, "ab") as out:
            try:
                process = subprocess.Popen(
                    list(spec.argv),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise OrchestratorError(
                    f"cannot start {spec.name} ({spec.argv[0]}): {exc}"
                ) from exc
        child = RunningChild(spec, process, log_path)
        self.children.append(child)
        return child

    def check(self) -> list[RunningChild]:
        """Children that finished as expected (exit 0 of an ``expected_exit`` child).

        Raises :class:`ChildCrashed` for the first child that exited otherwise.
        """
        finished = []
        for child in self.children:
            code = child.exit_code()
            if code is None:
                continue
            if code == 0 and child.spec.expected_exit:
                finished.append(child)
                continue
            raise ChildCrashed(child.spec.name, code, child.log_path, log_tail(child.log_path))
        return finished

    def stop_all(self, grace_s: float = 10.0) -> None:
        """SIGTERM every child's process group (newest first), SIGKILL what is left after
        ``grace_s``, and reap them."""
        for child in reversed(self.children):
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(max(0.0, deadline - time.monotonic()))
        for child in reversed(self.children):
            _signal_group(child.pid, signal.SIGKILL)  # leftovers and grandchildren
            child.process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
