"""The hot-swapping scorer behind ``lsat serve``.

Modules: :mod:`~lsat.adapters.serving.state` (the immutable serving set, swapped by reference),
:mod:`~lsat.adapters.serving.swapper` (load → verify → swap → delete old, and the
``adapter.versions`` consumer), :mod:`~lsat.adapters.serving.service` (scoring with one set per
request), :mod:`~lsat.adapters.serving.api` (request parsing), :mod:`~lsat.adapters.serving.admin`
(token check, promote / rollback / retrain), :mod:`~lsat.adapters.serving.server` (HTTP),
:mod:`~lsat.adapters.serving.metrics` (Prometheus).

Errors: :class:`ServingError` ← :class:`BadRequest`, :class:`AdminDenied`,
:class:`AdapterRefused`, :class:`NothingServing`.
"""

from lsat.adapters.serving.admin import AdminActions, AdminDenied, KafkaPublisher, check_bearer
from lsat.adapters.serving.api import BadRequest
from lsat.adapters.serving.metrics import ServingMetrics
from lsat.adapters.serving.server import Scorer
from lsat.adapters.serving.service import ScoringService, StoreHistory
from lsat.adapters.serving.state import LoadedSet, NothingServing, ServingError, ServingState
from lsat.adapters.serving.swapper import AdapterRefused, AdapterSwapper, VersionsConsumer

__all__ = [
    "AdapterRefused",
    "AdapterSwapper",
    "AdminActions",
    "AdminDenied",
    "BadRequest",
    "KafkaPublisher",
    "LoadedSet",
    "NothingServing",
    "Scorer",
    "ScoringService",
    "ServingError",
    "ServingMetrics",
    "ServingState",
    "StoreHistory",
    "VersionsConsumer",
    "check_bearer",
]
