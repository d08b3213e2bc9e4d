"""Admin actions of the scorer: bearer-token check, promote / rollback through the registry
(then publish the whole new serving set), and a manual retrain request to the stream worker.

>>> check_bearer("s3cret", "Bearer s3cret")
>>> check_bearer("s3cret", None)
Traceback (most recent call last):
...
lsat.adapters.serving.admin.AdminDenied: admin action needs "Authorization: Bearer <token>"
>>> try:
...     check_bearer("s3cret", "Bearer guess")
... except AdminDenied as denied:
...     denied.status
403
"""

from __future__ import annotations

import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from lsat.adapters.lifecycle.publication import ServingSet, current_serving_set
from lsat.adapters.lifecycle.registry import RegistryStore
from lsat.adapters.serving.api import PromoteRequest, RollbackRequest
from lsat.adapters.serving.state import ServingError
from lsat.core.settings import KafkaSettings, Settings, reveal

__all__ = [
    "AdminActions",
    "AdminDenied",
    "KafkaPublisher",
    "check_bearer",
    "request_manual_retrain",
]

Publisher = Callable[[ServingSet], None]


class AdminDenied(ServingError):
    """A missing (401) or wrong (403) admin token, or admin actions disabled (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def check_bearer(expected: str | None, authorization: str | None) -> None:
    """Accept ``Authorization: Bearer <expected>``; constant-time comparison.

    Without a configured token admin actions are disabled (403), never open.
    """
    if not expected:
        raise AdminDenied("admin actions are disabled: set LSAT_ADMIN_TOKEN on the scorer", 403)
    if not authorization or not authorization.startswith("Bearer "):
        raise AdminDenied('admin action needs "Authorization: Bearer <token>"', 401)
    given = authorization[len("Bearer ") :].strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise AdminDenied("admin token rejected", 403)


class KafkaPublisher:
    """Publishes serving sets on ``adapter.versions`` (kafka-python, acks=all, flushed)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        from kafka import KafkaProducer

        from lsat.stream.kafka_client import kafka_python_kwargs

        self.topic = kafka.topics.versions
        self._producer = KafkaProducer(**kafka_python_kwargs(kafka), acks="all")

    def __call__(self, serving: ServingSet) -> None:
        self._producer.send(self.topic, serving.to_json()).get(timeout=30)

    def close(self) -> None:
        """Flush and close the producer."""
        self._producer.close()


def request_manual_retrain(settings: Settings, timeout_s: float = 30.0) -> dict[str, Any]:
    """Ask the stream worker to close its open window and publish a manual RetrainRequest.

    The same call as ``lsat retrain --now``: POST to the worker's close-window endpoint.
    """
    from lsat.stream.worker import CLOSE_WINDOW_PATH

    url = f"http://{settings.bind_host}:{settings.stream.worker_web_port}{CLOSE_WINDOW_PATH}"
    request = urllib.request.Request(url, data=b"{}", method="POST")
    if settings.admin_token:
        request.add_header("Authorization", f"Bearer {reveal(settings.admin_token)}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise ServingError(f"worker at {url} refused ({exc.code}): {detail}") from None
    except urllib.error.URLError as exc:
        raise ServingError(f"no worker answering at {url}: {exc.reason}") from None


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
