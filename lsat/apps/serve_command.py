"""``lsat serve``: the hot-swapping scorer (HTTP on ``bind_host``, adapters from the registry).

On start it loads what the registry's ``serving-*`` aliases name, then follows
``adapter.versions`` and swaps without a restart. The API runs on uvicorn with the limits below
(``LSAT_SCORER_*`` variables, each overridden by its flag); ``GET /openapi.json`` describes it,
``/healthz`` and ``/readyz`` are for supervisors and load balancers.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import TYPE_CHECKING

from lsat.core.settings import Settings

if TYPE_CHECKING:
    from lsat.adapters.serving import ServerLimits

__all__ = ["register"]


LIMIT_FLAGS = (
    "max_body_bytes",
    "request_timeout_s",
    "keep_alive_s",
    "max_concurrency",
    "max_queue",
    "max_candidates",
    "retry_after_s",
    "shutdown_timeout_s",
)
"""``lsat serve`` flags that override an ``LSAT_SCORER_*`` limit of the same name."""


def _limits(args: argparse.Namespace, settings: Settings) -> ServerLimits:
    """The ``LSAT_SCORER_*`` limits with the flags given on top."""
    from lsat.adapters.serving import ServerLimits

    flags = {name: getattr(args, name, None) for name in LIMIT_FLAGS}
    return ServerLimits.from_settings(settings.scorer, **flags)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from lsat.adapters.lifecycle.registry import open_registry
    from lsat.adapters.model.base_model import load_base_model
    from lsat.adapters.model.recommender import LoraRecommender
    from lsat.adapters.serving import Scorer, StoreHistory
    from lsat.adapters.serving.memory import limit_primitive_cache
    from lsat.apps.stream_commands import resolve_kafka

    limit_primitive_cache()  # before the first bf16 matmul
    settings = resolve_kafka(settings)
    port = settings.scorer.port if args.port is None else args.port
    limits = _limits(args, settings)
    base = load_base_model(settings.base_model, cache_dir=settings.cache_dir)
    history = StoreHistory(settings.db_url)
    recommender = LoraRecommender(
        base,
        history.titles(),
        prefix_cache_bytes=settings.scorer.prefix_cache_mb << 20,
        progress=False,
    )
    registry = open_registry(settings.db_url)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    scorer = Scorer(
        recommender, registry, settings, history_source=history, port=port, host=args.host,
        limits=limits, model_thread=False,
    )  # fmt: skip
    with scorer:
        print(f"scorer on {scorer.url} (Ctrl-C to stop)", flush=True)

        # the model runs here, on the main thread (fastest for torch's OpenMP ops); a helper
        # waits for the signal and stops the scorer, which ends serve_model
        def stop_on_signal() -> None:
            done.wait()
            scorer.stop()

        threading.Thread(target=stop_on_signal, name="scorer-stopper", daemon=True).start()
        scorer.serve_model()
    registry.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lsat serve``."""
    parser = subparsers.add_parser(
        "serve", help="run the hot-swapping scorer API", description=__doc__
    )
    parser.add_argument("--port", type=int, help="HTTP port (default: LSAT_SCORER_PORT, else 8080)")
    parser.add_argument("--host", help="address to bind (default: LSAT_BIND_HOST, else 127.0.0.1)")
    limits = parser.add_argument_group(
        "limits", "each overrides its LSAT_SCORER_* variable (default in brackets)"
    )
    limits.add_argument("--max-concurrency", type=int, help="scoring calls at once [8]")
    limits.add_argument("--max-queue", type=int, help="calls waiting beyond those; 503 after [32]")
    limits.add_argument(
        "--request-timeout-s", type=float, help="to send headers, then body; queue wait [30]"
    )
    limits.add_argument("--keep-alive-s", type=float, help="idle kept-alive connection [5]")
    limits.add_argument("--max-body-bytes", type=int, help="largest request body [1 MiB]")
    limits.add_argument("--max-candidates", type=int, help="items per request [1000]")
    limits.add_argument("--retry-after-s", type=float, help="Retry-After of a 503 [1]")
    limits.add_argument(
        "--shutdown-timeout-s", type=float, help="running requests may finish on stop [10]"
    )
    parser.set_defaults(func=_serve)
