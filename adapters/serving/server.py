"""The scorer process's assembly: state, swapper, versions consumer, and the HTTP server
(:mod:`~lsat.adapters.serving.app` on uvicorn, in a background thread).

:class:`Scorer` binds its socket in :meth:`Scorer.start` (so ``port=0`` works and :attr:`url`
is known at once) on ``bind_host`` (127.0.0.1 unless configured), serves until
:meth:`Scorer.stop`, which lets running requests finish for up to
``limits.shutdown_timeout_s``. The model runs on a thread of its own, or, with
``model_thread=False``, on the thread that calls :meth:`Scorer.serve_model` — ``lsat serve``
gives it the main thread, where torch's OpenMP ops run fastest
(:mod:`~lsat.adapters.serving.batcher`). Limits and timeouts live in :class:`ServerLimits`
(by default the ``LSAT_SCORER_*`` settings, :meth:`ServerLimits.from_settings`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from lsat.adapters.lifecycle.artifact_stores import ArtifactResolver
from lsat.adapters.lifecycle.publication import current_serving_set
from lsat.adapters.lifecycle.publisher import ServingSetPublisher
from lsat.adapters.lifecycle.registry import RegistryStore
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.serving.admin import AdminActions
from lsat.adapters.serving.admission import Admission
from lsat.adapters.serving.app import ROUTES, AppParts, build_app
from lsat.adapters.serving.guard import RequestGuard, ServerLimits
from lsat.adapters.serving.memory import malloc_trim
from lsat.adapters.serving.metrics import ServingMetrics
from lsat.adapters.serving.protocol import timed_h11_protocol
from lsat.adapters.serving.service import HistorySource, ScoringService
from lsat.adapters.serving.state import ServingError, ServingState
from lsat.adapters.serving.swapper import AdapterRefused, AdapterSwapper, VersionsConsumer
from lsat.core.settings import Settings, reveal

__all__ = ["Scorer", "ServerLimits"]

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0


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
        host: str | None = None,
        consume: bool = True,
        limits: ServerLimits | None = None,
        model_thread: bool = True,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.limits = limits or ServerLimits.from_settings(settings.scorer)
        self.metrics = ServingMetrics()
        self.state = ServingState()
        self.model_lock = threading.RLock()
        artifacts = ArtifactResolver.for_registry(registry, settings.cache_dir / "artifacts")
        self.swapper = AdapterSwapper(
            recommender, self.state, self.model_lock, self.metrics, artifacts
        )
        trim_s = settings.scorer.memory_trim_s
        self.service = ScoringService(
            recommender,
            self.state,
            self.model_lock,
            history_source,
            bf16=settings.scorer.bf16,
            trim_interval_s=trim_s if trim_s > 0 else None,
            model_thread=model_thread,
        )
        self.history_source = history_source
        self.host = host or settings.bind_host
        self.port = port
        self.consume = consume
        self._publisher: ServingSetPublisher | None = None
        self.admin = AdminActions(registry, self._publish, settings, actor="scorer-api")
        self.consumer: VersionsConsumer | None = None
        self.admission: Admission | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False

    def _publish(self, serving: Any) -> None:
        if self._publisher is None:
            self._publisher = ServingSetPublisher(self.settings.kafka)
        self._publisher(serving)

    @property
    def url(self) -> str:
        """Base URL the server answers on."""
        host, port = self._address or (self.host, self.port)
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
            self.metrics.consumer_up.set_function(lambda: float(self._consumer_alive()))
        self.load_from_registry()
        malloc_trim()  # what loading the base model and the adapters freed goes back to the OS
        limits = self.limits
        self.admission = Admission(
            limits.max_concurrency,
            limits.max_queue,
            limits.request_timeout_s,
            retry_after_s=limits.retry_after_s,
            on_change=self.metrics.in_flight.set,
        )
        parts = AppParts(
            service=self.service,
            state=self.state,
            admin=self.admin,
            admission=self.admission,
            metrics=self.metrics,
            limits=limits,
            registry=self.registry,
            history_source=self.history_source,
            admin_token=lambda: reveal(self.settings.admin_token),
            consumer=lambda: self.consumer,
        )
        app = RequestGuard(build_app(parts), limits, self.metrics, ROUTES)
        config = uvicorn.Config(
            app,
            http=timed_h11_protocol(limits.request_timeout_s),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # uvicorn annotates an int but takes seconds as a float (loop.call_later)
            timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
            timeout_graceful_shutdown=max(1, round(limits.shutdown_timeout_s)),
        )
        self._server = uvicorn.Server(config)
        self._socket = _listen(self.host, self.port)
        self._address = self._socket.getsockname()[:2]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="scorer-http"
        )
        self._thread.daemon = True
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServingError(f"scorer HTTP server did not start on {self.url}")
            time.sleep(0.01)
        log.info("scorer listening on %s", self.url)
        return self

    def serve_model(self) -> None:
        """Run the model on the calling thread until :meth:`stop` (called from another thread
        or a signal handler's helper); for ``model_thread=False``."""
        self.service.serve_model()

    def _consumer_alive(self) -> bool:
        return self.consumer is not None and self.consumer.alive

    def stop(self) -> None:
        """Stop HTTP (running requests may finish), the consumer and the publisher; once."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(self.limits.shutdown_timeout_s + 5.0)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(5.0)
        if self._socket is not None:
            self._socket.close()
        if self.admission is not None:
            self.admission.close()
        self.service.close()
        if self.consumer is not None:
            self.consumer.stop()
        if self._publisher is not None:
            self._publisher.close()

    def __enter__(self) -> Scorer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServingError(f"cannot listen on {host}:{port}: {exc}") from None
    sock.listen(128)
    return sock
