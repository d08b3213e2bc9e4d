"""The scorer's request guard: a plain ASGI middleware in front of the application.

For every HTTP request it assigns a request id (``X-Request-ID``, echoed), reads the whole body
before the application sees it — at most ``max_body_bytes`` counted on the stream, so a chunked
or lying body is cut off as soon as it passes the limit (413), a ``Content-Length`` above the
limit is refused before reading (413), and a body that does not arrive within
``request_timeout_s`` is answered with 408 — and treats the body as JSON whatever its
``Content-Type`` says (``curl -d`` and urllib send a form type). Refusals close the connection.
It counts every answer by endpoint and status, and turns an exception that escaped the
application into a JSON 500 without internals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from dataclasses import dataclass
from typing import Any

from lsat.adapters.serving.api import MAX_ITEMS
from lsat.adapters.serving.metrics import ServingMetrics
from lsat.core.settings import ScorerSettings

__all__ = ["ASGIApp", "RequestGuard", "ServerLimits", "error_bytes"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TIMED_ENDPOINTS = ("/score", "/recommend")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Limits and timeouts of the scorer's HTTP server (all enforced by the server, not by
    handlers).

    ``max_body_bytes``: largest request body. ``request_timeout_s``: time a client has to send
    its headers, and then its body (408 or a closed connection after it). ``keep_alive_s``: idle
    time before a kept-alive connection is closed. ``max_concurrency``: scoring requests running
    at once; ``max_queue``: more that may wait for a slot (503 + ``Retry-After`` beyond, or after
    waiting ``request_timeout_s``). ``max_candidates``: items per ``/score`` or ``/recommend``
    (413 beyond). ``retry_after_s``: the wait a 503 suggests. ``shutdown_timeout_s``: how long
    :meth:`Scorer.stop` lets running requests finish.

    >>> ServerLimits(max_concurrency=0)
    Traceback (most recent call last):
    ...
    ValueError: max_concurrency must be >= 1, got 0
    """

    max_body_bytes: int = 1 << 20
    request_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_concurrency: int = 8
    max_queue: int = 32
    max_candidates: int = MAX_ITEMS
    retry_after_s: float = 1.0
    shutdown_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_concurrency", "max_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue!r}")
        for name in ("request_timeout_s", "keep_alive_s", "retry_after_s", "shutdown_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")

    @classmethod
    def from_settings(cls, scorer: ScorerSettings, **overrides: Any) -> ServerLimits:
        """The limits the ``LSAT_SCORER_*`` settings name, with ``overrides`` (``None`` values
        ignored) on top: flags beat the environment, which beats the defaults.

        >>> ServerLimits.from_settings(ScorerSettings(max_queue=0), max_concurrency=2)
        ... # doctest: +ELLIPSIS
        ServerLimits(..., max_concurrency=2, max_queue=0, ...)
        """
        chosen = {name: getattr(scorer, name) for name in cls.__dataclass_fields__}
        chosen.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**chosen)


def error_bytes(message: str, request_id: str | None = None) -> bytes:
    """The JSON body of an error answer.

    >>> error_bytes("too big", "r1")
    b'{"error": "too big", "request_id": "r1"}'
    """
    return json.dumps({"error": message, "request_id": request_id}).encode()


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when it is a short token, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and 0 < len(value) <= 64 and value.isascii():
            text = value.decode()
            if all(c.isalnum() or c in "-_.:" for c in text):
                return text
    return uuid.uuid4().hex


class RequestGuard:
    """ASGI middleware: request id, bounded and timed body read, metrics, last-resort 500."""

    def __init__(
        self,
        app: ASGIApp,
        limits: ServerLimits,
        metrics: ServingMetrics,
        routes: Collection[str],
    ) -> None:
        self.app = app
        self.limits = limits
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"]
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            body = await self._read_body(scope, receive)
        except _Refused as refused:
            await _answer(send_with_id, refused.status, str(refused), request_id)
        else:
            scope["headers"] = [
                (k, v) for k, v in scope.get("headers", ()) if k != b"content-type"
            ] + [(b"content-type", b"application/json")]
            try:
                await self.app(scope, _replay(body, receive), send_with_id)
            except Exception:  # already logged by the app's handler when it answered
                if status == 0:
                    log.exception("request %s %s failed", request_id, path)
                    await _answer(send_with_id, 500, "internal error", request_id, close=False)
        if path != "/metrics":
            endpoint = path if path in self.routes else "other"
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            if path in TIMED_ENDPOINTS and status == 200:
                self.metrics.latency.labels(endpoint=path).observe(time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.limits.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and int(value) > limit:  # digits only (h11 checks)
                raise _Refused(413, f"body of {int(value)} bytes exceeds the limit of {limit}")
        chunks, size = [], 0
        deadline = asyncio.get_running_loop().time() + self.limits.request_timeout_s
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except TimeoutError:
                timeout = self.limits.request_timeout_s
                raise _Refused(408, f"request body not received within {timeout:g}s") from None
            if message["type"] == "http.disconnect":
                raise _Refused(400, "client disconnected before sending its body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body over once, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(
    send: Send, status: int, message: str, request_id: str, *, close: bool = True
) -> None:
    body = error_bytes(message, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
