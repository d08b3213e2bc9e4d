"""``lsat up``: run broker, worker, trainer, scorer and a replay together with a live table.

Modules: :mod:`~lsat.orchestrator.supervisor` (child processes), :mod:`~lsat.orchestrator.
live_table` (the rich view), :mod:`~lsat.orchestrator.up` (the run), :mod:`~lsat.orchestrator.
retrain_skip` (the bootstrap windows' retrain requests), :mod:`~lsat.orchestrator.up_cli` (the
subcommand).
"""

from lsat.orchestrator.errors import ChildCrashed, OrchestratorError
from lsat.orchestrator.supervisor import ChildSpec, RunningChild, Supervisor
from lsat.orchestrator.up import Ports, UpOptions, UpRun, child_env, events_needed

__all__ = [
    "ChildCrashed",
    "ChildSpec",
    "OrchestratorError",
    "Ports",
    "RunningChild",
    "Supervisor",
    "UpOptions",
    "UpRun",
    "child_env",
    "events_needed",
]
