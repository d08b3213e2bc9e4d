"""``lsat up``: run broker, worker, trainer, scorer and a replay together with a live table.

Modules: :mod:`~lsat.apps.orchestrator.supervisor` (child processes), :mod:`~lsat.apps.orchestrator.
live_table` (the rich view), :mod:`~lsat.apps.orchestrator.up` (the run),
:mod:`~lsat.apps.orchestrator.
retrain_skip` (the bootstrap windows' retrain requests), :mod:`~lsat.apps.orchestrator.up_cli` (the
subcommand).
"""

from lsat.apps.orchestrator.errors import ChildCrashed, OrchestratorError
from lsat.apps.orchestrator.supervisor import ChildSpec, RunningChild, Supervisor
from lsat.apps.orchestrator.up import Ports, UpOptions, UpRun, child_env, events_needed

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
