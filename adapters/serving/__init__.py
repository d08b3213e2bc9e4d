"""The hot-swapping scorer behind ``lsat serve``.

Modules: :mod:`~adapters.serving.state` (the immutable serving set, swapped by reference),
:mod:`~adapters.serving.swapper` (load → verify → swap → delete old, and the
``adapter.versions`` consumer), :mod:`~adapters.serving.service` (scoring with one set per
request), :mod:`~adapters.serving.api` (request parsing), :mod:`~adapters.serving.admin`
(token check, promote / rollback / retrain), :mod:`~adapters.serving.server` (HTTP),
:mod:`~adapters.serving.metrics` (Prometheus).

Errors: :class:`ServingError` ← :class:`BadRequest`, :class:`AdminDenied`,
:class:`AdapterRefused`, :class:`NothingServing`.
"""

from adapters.serving.admin import AdminActions, AdminDenied, KafkaPublisher, check_bearer
from adapters.serving.api import BadRequest
from adapters.serving.metrics import ServingMetrics
from adapters.serving.server import Scorer
from adapters.serving.service import ScoringService, StoreHistory
from adapters.serving.state import LoadedSet, NothingServing, ServingError, ServingState
from adapters.serving.swapper import AdapterRefused, AdapterSwapper, VersionsConsumer

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
