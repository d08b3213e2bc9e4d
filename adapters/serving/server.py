"""The scorer's HTTP server (stdlib ``ThreadingHTTPServer``) and its assembly.

Routes: ``POST /score``, ``POST /recommend``, ``GET /adapters``, ``GET /healthz``,
``GET /metrics``; admin (bearer token): ``POST /admin/promote``, ``/admin/rollback``,
``/admin/retrain``. Errors answer JSON ``{"error": ...}``: 400 bad request, 401/403 token,
404 unknown route or registry key, 409 registry conflict, 503 nothing serving yet.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lsat.adapters.lifecycle.publication import current_serving_set
from lsat.adapters.lifecycle.registry import (
    AdapterVersionNotFound,
    AliasNotFound,
    RegistryError,
    RegistryStore,
)
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.serving.admin import AdminActions, AdminDenied, KafkaPublisher, check_bearer
from lsat.adapters.serving.api import (
    BadRequest,
    parse_promote,
    parse_recommend,
    parse_rollback,
    parse_score,
)
from lsat.adapters.serving.metrics import CONTENT_TYPE_LATEST, ServingMetrics
from lsat.adapters.serving.service import HistorySource, ScoringService
from lsat.adapters.serving.state import NothingServing, ServingError, ServingState
from lsat.adapters.serving.swapper import AdapterRefused, AdapterSwapper, VersionsConsumer
from lsat.core.settings import Settings, reveal

__all__ = ["Scorer"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


class Scorer:
    """Everything one scorer instance runs: state, swapper, consumer, HTTP server."""

    def __init__(
        self,
        recommender: LoraRecommender,
        registry: RegistryStore,
        settings: Settings,
        *,
        history_source: HistorySource | None = None,
        port: int = 8080,
        consume: bool = True,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = ServingMetrics()
        self.state = ServingState()
        self.model_lock = threading.RLock()
        self.swapper = AdapterSwapper(recommender, self.state, self.model_lock, self.metrics)
        self.service = ScoringService(recommender, self.state, self.model_lock, history_source)
        self.port = port
        self.consume = consume
        self._publisher: KafkaPublisher | None = None
        self.admin = AdminActions(registry, self._publish, settings, actor="scorer-api")
        self.consumer: VersionsConsumer | None = None
        self.httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _publish(self, serving: Any) -> None:
        if self._publisher is None:
            self._publisher = KafkaPublisher(self.settings.kafka)
        self._publisher(serving)

    @property
    def url(self) -> str:
        """Base URL the server answers on."""
        host, port = (
            self.httpd.server_address[:2] if self.httpd else (self.settings.bind_host, self.port)
        )
        return f"http://{host}:{port}"

    def load_from_registry(self) -> bool:
        """Serve what the registry's serving-* aliases name (True when something was loaded)."""
        serving = current_serving_set(self.registry)
        if serving is None:
            log.warning("registry has no serving-* alias yet; waiting for adapter.versions")
            return False
        try:
            self.swapper.apply(serving)
        except AdapterRefused as exc:
            log.error("could not serve the registry's set at start: %s", exc)
            return False
        return True

    def start(self) -> Scorer:
        """Position the consumer, load the registry's set, then open the HTTP server."""
        if self.consume:
            self.consumer = VersionsConsumer(self.settings.kafka, self.swapper.apply).start()
        self.load_from_registry()
        self.httpd = ThreadingHTTPServer((self.settings.bind_host, self.port), _handler(self))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="scorer-http", daemon=True
        )
        self._thread.start()
        log.info("scorer listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop HTTP, the consumer and the publisher."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        if self.consumer is not None:
            self.consumer.stop()
        if self._publisher is not None:
            self._publisher.close()

    def __enter__(self) -> Scorer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


Route = Callable[[bytes, "dict[str, str]"], Any]


def _routes(scorer: Scorer) -> dict[tuple[str, str], tuple[Route, bool]]:
    """(method, path) → (handler(body, headers), is_admin)."""
    service, admin = scorer.service, scorer.admin

    def score(body: bytes, _h: dict[str, str]) -> Any:
        req = parse_score(body)
        return service.score(req.user_id, req.item_ids, req.history)

    def recommend(body: bytes, _h: dict[str, str]) -> Any:
        req = parse_recommend(body)
        return service.recommend(req.user_id, req.candidates, req.k, req.history)

    def adapters(_b: bytes, _h: dict[str, str]) -> Any:
        current = scorer.state.current
        if current is None:
            raise NothingServing("no adapters are being served yet")
        return current.describe()

    def healthz(_b: bytes, _h: dict[str, str]) -> Any:
        current = scorer.state.current
        return {"status": "ok", "serving": current is not None}

    return {
        ("POST", "/score"): (score, False),
        ("POST", "/recommend"): (recommend, False),
        ("GET", "/adapters"): (adapters, False),
        ("GET", "/healthz"): (healthz, False),
        ("POST", "/admin/promote"): (lambda b, _h: admin.promote(parse_promote(b)), True),
        ("POST", "/admin/rollback"): (lambda b, _h: admin.rollback(parse_rollback(b)), True),
        ("POST", "/admin/retrain"): (lambda _b, _h: admin.retrain(), True),
    }


def _status_of(exc: Exception) -> int:
    if isinstance(exc, AdminDenied):
        return exc.status
    if isinstance(exc, BadRequest):
        return 400
    if isinstance(exc, AdapterVersionNotFound | AliasNotFound):
        return 404
    if isinstance(exc, RegistryError):
        return 409
    if isinstance(exc, NothingServing):
        return 503
    if isinstance(exc, ServingError):
        return 502
    return 500


def _handler(scorer: Scorer) -> type[BaseHTTPRequestHandler]:
    routes = _routes(scorer)
    metrics = scorer.metrics

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            if method == "GET" and path == "/metrics":
                self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
                return
            started = time.perf_counter()
            route = routes.get((method, path))
            endpoint = path if route else "other"
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    raise BadRequest(f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
                body = self.rfile.read(length) if length else b""
                if route is None:
                    known = sorted({p for _, p in routes})
                    status, payload = 404, {"error": f"no route {method} {path}; have {known}"}
                else:
                    handler, is_admin = route
                    if is_admin:
                        token = reveal(scorer.settings.admin_token)
                        check_bearer(token, self.headers.get("Authorization"))
                    status, payload = 200, handler(body, dict(self.headers))
            except Exception as exc:  # every failure becomes a JSON error answer
                status = _status_of(exc)
                if status == 500:
                    log.exception("%s %s failed", method, path)
                payload = {"error": str(exc)}
            self._send(status, json.dumps(payload).encode())
            metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            if path in ("/score", "/recommend") and status == 200:
                metrics.latency.labels(endpoint=path).observe(time.perf_counter() - started)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

    return Handler
