"""Admin actions of the scorer: promote / rollback through the registry (then publish the whole
new serving set), and a manual retrain request to the stream worker. The token check is the
project's one (:func:`lsat.core.admin.check_bearer`, re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lsat.adapters.lifecycle.publication import ServingSet, current_serving_set
from lsat.adapters.lifecycle.registry import RegistryStore
from lsat.adapters.serving.api import PromoteRequest, RollbackRequest
from lsat.adapters.serving.state import ServingError
from lsat.core.admin import AdminDenied, check_bearer
from lsat.core.settings import Settings

__all__ = [
    "AdminActions",
    "AdminDenied",
    "check_bearer",
    "request_manual_retrain",
]

Publisher = Callable[[ServingSet], None]


def request_manual_retrain(settings: Settings, timeout_s: float = 30.0) -> dict[str, Any]:
    """Ask the stream worker to close its open window and publish a manual RetrainRequest.

    The same call as ``lsat retrain --now`` (:func:`lsat.stream.close_window.request_close_window`,
    which dials ``LSAT_WORKER_URL``).
    """
    from lsat.stream.close_window import CloseWindowFailed, request_close_window

    try:
        return request_close_window(settings, timeout_s=timeout_s)
    except CloseWindowFailed as exc:
        raise ServingError(str(exc)) from None


class AdminActions:
    """Promote and roll back through the registry, then publish the resulting serving set."""

    def __init__(
        self, registry: RegistryStore, publish: Publisher, settings: Settings, actor: str
    ) -> None:
        self.registry = registry
        self.publish = publish
        self.settings = settings
        self.actor = actor

    def _publish_current(self) -> dict[str, Any]:
        serving = current_serving_set(self.registry)
        if serving is None:
            raise ServingError("the registry has no serving-* alias set; nothing to publish")
        self.publish(serving)
        return {"published": json.loads(serving.to_json())}

    def promote(self, request: PromoteRequest) -> dict[str, Any]:
        """Point the alias at the version, then publish."""
        assert request.alias is not None  # PromoteRequest's validator fills in serving-<kind>
        change = self.registry.set_alias(
            request.alias,
            request.kind,
            request.version,
            reason="promoted through the scorer API",
            actor=self.actor,
        )
        return {"alias": change.alias, "target": str(change.target), **self._publish_current()}

    def rollback(self, request: RollbackRequest) -> dict[str, Any]:
        """Restore the alias's previous target, then publish."""
        version = self.registry.rollback(
            request.alias, reason="rolled back through the scorer API", actor=self.actor
        )
        return {"alias": request.alias, "target": str(version.key), **self._publish_current()}

    def retrain(self) -> dict[str, Any]:
        """Request a manual retrain from the stream worker."""
        return request_manual_retrain(self.settings)
