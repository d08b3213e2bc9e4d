"""The scorer's ASGI application (FastAPI): routes, error answers, health and readiness.

Routes: ``POST /score``, ``POST /recommend``, ``GET /adapters``, ``GET /healthz`` (liveness),
``GET /readyz`` (readiness), ``GET /metrics``, ``GET /openapi.json``; admin (bearer token):
``POST /admin/promote``, ``/admin/rollback``, ``/admin/retrain``.

Every error answers JSON ``{"error": ..., "request_id": ...}``: 400 bad request, 401/403 token,
404 unknown route or registry key, 405 wrong method, 408 body too slow, 409 registry conflict,
413 body or item list too large, 502 a refused downstream action, 503 nothing serving yet or
overloaded (with ``Retry-After``), 500 anything unexpected — logged with its request id, never
echoed. ``/healthz`` fails (503) when the ``adapter.versions`` consumer thread died: the process
then no longer follows swaps and only a restart helps. ``/readyz`` also needs adapters loaded
and the store reachable.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from lsat.adapters.lifecycle.registry import (
    AdapterVersionNotFound,
    AliasNotFound,
    RegistryError,
    RegistryStore,
)
from lsat.adapters.serving.admin import AdminActions, AdminDenied, check_bearer
from lsat.adapters.serving.admission import Admission
from lsat.adapters.serving.api import (
    AdaptersResponse,
    BadRequest,
    ErrorBody,
    HealthResponse,
    PromoteRequest,
    ReadyResponse,
    RecommendRequest,
    RecommendResponse,
    RollbackRequest,
    ScoreRequest,
    ScoreResponse,
    TooLarge,
    describe_errors,
)
from lsat.adapters.serving.guard import ServerLimits
from lsat.adapters.serving.metrics import CONTENT_TYPE_LATEST, ServingMetrics
from lsat.adapters.serving.service import HistorySource, ScoringService
from lsat.adapters.serving.state import NothingServing, Overloaded, ServingError, ServingState
from lsat.adapters.serving.swapper import VersionsConsumer

__all__ = ["ROUTES", "AppParts", "build_app", "status_of"]

log = logging.getLogger(__name__)

ROUTES = (
    "/score",
    "/recommend",
    "/adapters",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/admin/promote",
    "/admin/rollback",
    "/admin/retrain",
)
READY_PROBE_TIMEOUT_S = 5.0
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Bad request: the message names the field and the bad value"),
        (413, "Body or item list over the limit"),
        (500, "Unexpected failure (logged with the request id)"),
        (503, "No adapters served yet, or overloaded: retry after Retry-After seconds"),
    )
}
_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    **{
        code: {"model": ErrorBody, "description": text}
        for code, text in (
            (401, "No admin token"),
            (403, "Wrong token, or admin actions disabled"),
            (404, "No such version or alias"),
            (409, "Registry conflict"),
            (502, "The worker or broker refused"),
        )
    },
}


@dataclass(frozen=True)
class AppParts:
    """What the application serves from (built by :class:`~lsat.adapters.serving.Scorer`).

    ``admin_token`` returns the configured token (``None``: admin actions disabled);
    ``consumer`` returns the versions consumer (``None``: not consuming).
    """

    service: ScoringService
    state: ServingState
    admin: AdminActions
    admission: Admission
    metrics: ServingMetrics
    limits: ServerLimits
    registry: RegistryStore
    history_source: HistorySource | None
    admin_token: Callable[[], str | None]
    consumer: Callable[[], VersionsConsumer | None]


def status_of(exc: Exception) -> int:
    """The HTTP status of an exception raised while answering.

    >>> status_of(BadRequest("x")), status_of(NothingServing("x")), status_of(KeyError("x"))
    (400, 503, 500)
    """
    if isinstance(exc, AdminDenied):
        return exc.status
    if isinstance(exc, BadRequest):
        return 400
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, AdapterVersionNotFound | AliasNotFound):
        return 404
    if isinstance(exc, RegistryError):
        return 409
    if isinstance(exc, NothingServing | Overloaded):
        return 503
    if isinstance(exc, ServingError):
        return 502
    return 500


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _error(request: Request, status: int, message: str, **headers: str) -> JSONResponse:
    body = {"error": message, "request_id": _request_id(request)}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _check_count(count: int, field: str, limit: int) -> None:
    if count > limit:
        raise TooLarge(f"{field} has {count} ids; at most {limit} per request")


def _consumer_state(consumer: VersionsConsumer | None) -> str:
    if consumer is None:
        return "disabled"
    if consumer.alive:
        return "ok"
    return "dead" if consumer.error else "stopped"


class _ScorerAPI(FastAPI):
    """FastAPI with the scorer's OpenAPI schema (:func:`_openapi`)."""

    def openapi(self) -> dict[str, Any]:
        return _openapi(self)


def build_app(parts: AppParts) -> FastAPI:
    """The FastAPI application over ``parts`` (wrap it in the request guard to serve it)."""
    app = _ScorerAPI(
        title="lsat scorer",
        summary="P(like) from the long, short and combined LoRA adapters; hot-swapped.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    _add_error_handlers(app, parts)
    limit = parts.limits.max_candidates

    async def require_admin(request: Request) -> None:
        check_bearer(parts.admin_token(), request.headers.get("authorization"))

    @app.post("/score", response_model=ScoreResponse, response_model_exclude_unset=True,
              responses=_ERRORS)  # fmt: skip
    async def score(body: ScoreRequest) -> Any:
        """P(like) of each item per serving adapter and combined, with the versions used."""
        _check_count(len(body.items), "item_ids", limit)
        return await parts.admission.run(
            parts.service.score, body.user_id, body.items, body.history_pairs()
        )

    @app.post("/recommend", response_model=RecommendResponse, response_model_exclude_unset=True,
              responses=_ERRORS)  # fmt: skip
    async def recommend(body: RecommendRequest) -> Any:
        """The ``k`` candidates with the highest combined P(like), best first."""
        if body.candidates is not None:
            _check_count(len(body.candidates), "candidates", limit)
        return await parts.admission.run(
            parts.service.recommend, body.user_id, body.candidates, body.k, body.history_pairs()
        )

    @app.get("/adapters", response_model=AdaptersResponse, responses=_ERRORS)
    async def adapters() -> Any:
        """The serving set: versions, sha256 of the weights, ensemble α."""
        current = parts.state.current
        if current is None:
            raise NothingServing("no adapters are being served yet")
        return current.describe()

    @app.get("/healthz", response_model=HealthResponse, response_model_exclude_unset=True,
             responses={503: {"model": HealthResponse}})  # fmt: skip
    async def healthz() -> Any:
        """Liveness: fails when the adapter.versions consumer thread died."""
        serving = parts.state.current is not None
        if _consumer_state(parts.consumer()) in ("ok", "disabled"):
            return {"status": "ok", "serving": serving}
        reason = "adapter.versions consumer thread is not running; restart the scorer"
        return JSONResponse(
            {"status": "failing", "serving": serving, "reason": reason}, status_code=503
        )

    @app.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
    async def readyz() -> Any:
        """Readiness: adapters loaded, versions consumer alive, store reachable."""
        checks = {
            "adapters": "ok" if parts.state.current is not None else "none loaded",
            "versions_consumer": _consumer_state(parts.consumer()),
            "store": await _probe_store(parts),
        }
        ready = all(value in ("ok", "disabled") for value in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return body if ready else JSONResponse(body, status_code=503)

    @app.get("/metrics", response_class=Response, include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus exposition."""
        return Response(parts.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    admin_only = [Depends(require_admin)]

    @app.post("/admin/promote", dependencies=admin_only, responses=_ADMIN_ERRORS)
    async def promote(body: PromoteRequest) -> dict[str, Any]:
        """Point an alias at a version through the registry, then publish the serving set."""
        return await run_in_threadpool(parts.admin.promote, body)

    @app.post("/admin/rollback", dependencies=admin_only, responses=_ADMIN_ERRORS)
    async def rollback(body: RollbackRequest) -> dict[str, Any]:
        """Restore an alias's previous target, then publish the serving set."""
        return await run_in_threadpool(parts.admin.rollback, body)

    @app.post("/admin/retrain", dependencies=admin_only, responses=_ADMIN_ERRORS)
    async def retrain() -> dict[str, Any]:
        """Ask the stream worker for a manual retrain."""
        return await run_in_threadpool(parts.admin.retrain)

    return app


async def _probe_store(parts: AppParts) -> str:
    """``ok``, or why the registry / history store did not answer (class name only)."""

    def probe() -> None:
        parts.registry.aliases()
        if parts.history_source is not None:
            parts.history_source.history("readyz-probe", 1)

    try:
        await asyncio.wait_for(run_in_threadpool(probe), READY_PROBE_TIMEOUT_S)
    except TimeoutError:
        return f"unreachable: no answer within {READY_PROBE_TIMEOUT_S:g}s"
    except Exception as exc:
        log.warning("readiness: store probe failed", exc_info=True)
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def _add_error_handlers(app: FastAPI, parts: AppParts) -> None:
    # starlette types every handler as taking Exception; each is registered for its class only
    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _error(request, 400, describe_errors(exc.errors()))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        method, path = request.method, request.url.path
        if exc.status_code == 404:
            return _error(request, 404, f"no route {method} {path}; have {sorted(ROUTES)}")
        if exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            message = f"method {method} not allowed on {path}; use {allow or 'another'}"
            return _error(request, 405, message, Allow=allow)
        return _error(request, exc.status_code, str(exc.detail))

    async def serving_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            return await unexpected(request, exc)
        if isinstance(exc, Overloaded | NothingServing):
            wait = exc.retry_after_s if isinstance(exc, Overloaded) else 1.0
            if isinstance(exc, Overloaded):
                parts.metrics.rejected.labels(reason=exc.reason).inc()
            return _error(request, 503, str(exc), **{"Retry-After": str(math.ceil(wait))})
        return _error(request, status, str(exc))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "request %s %s %s failed",
            _request_id(request),
            request.method,
            request.url.path,
            exc_info=exc,
        )
        return _error(request, 500, "internal error")

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
    for kind in (ServingError, RegistryError, AdminDenied):
        app.add_exception_handler(kind, serving_error)
    app.add_exception_handler(Exception, unexpected)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, minus the 422 answers it documents: validation errors answer 400."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
