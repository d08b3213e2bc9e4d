"""The hot-swapping scorer behind ``lsat serve``.

Modules: :mod:`~lsat.adapters.serving.state` (the immutable serving set, swapped by reference;
retired adapters freed after their last request), :mod:`~lsat.adapters.serving.swapper` (load →
verify → swap → retire old, and the ``adapter.versions`` consumer),
:mod:`~lsat.adapters.serving.service` (scoring with one set per request),
:mod:`~lsat.adapters.serving.api` (pydantic request/response models),
:mod:`~lsat.adapters.serving.admin` (token check, promote / rollback / retrain),
:mod:`~lsat.adapters.serving.admission` (concurrency limit and bounded queue),
:mod:`~lsat.adapters.serving.app` (FastAPI routes, errors, health),
:mod:`~lsat.adapters.serving.guard` (request id, body limit and deadline, metrics),
:mod:`~lsat.adapters.serving.protocol` (header deadline on uvicorn's h11),
:mod:`~lsat.adapters.serving.server` (assembly, uvicorn in a thread),
:mod:`~lsat.adapters.serving.metrics` (Prometheus).

Errors: :class:`ServingError` ← :class:`BadRequest`, :class:`TooLarge`, :class:`AdapterRefused`,
:class:`NothingServing`, :class:`Overloaded`; a refused admin action raises
:class:`~lsat.core.admin.AdminDenied` (the project's one token check).
"""

from lsat.adapters.serving.admin import AdminActions, AdminDenied, check_bearer
from lsat.adapters.serving.api import BadRequest, TooLarge
from lsat.adapters.serving.guard import ServerLimits
from lsat.adapters.serving.metrics import ServingMetrics
from lsat.adapters.serving.server import Scorer
from lsat.adapters.serving.service import ScoringService, StoreHistory
from lsat.adapters.serving.state import (
    LoadedSet,
    NothingServing,
    Overloaded,
    ServingError,
    ServingState,
)
from lsat.adapters.serving.swapper import AdapterRefused, AdapterSwapper, VersionsConsumer

__all__ = [
    "AdapterRefused",
    "AdapterSwapper",
    "AdminActions",
    "AdminDenied",
    "BadRequest",
    "LoadedSet",
    "NothingServing",
    "Overloaded",
    "Scorer",
    "ScoringService",
    "ServerLimits",
    "ServingError",
    "ServingMetrics",
    "ServingState",
    "StoreHistory",
    "TooLarge",
    "VersionsConsumer",
    "check_bearer",
]
