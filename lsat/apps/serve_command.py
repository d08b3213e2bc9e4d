"""``lsat serve``: the hot-swapping scorer (HTTP on ``bind_host``, adapters from the registry).

On start it loads what the registry's ``serving-*`` aliases name, then follows
``adapter.versions`` and swaps without a restart.
"""

from __future__ import annotations

import argparse
import signal
import threading

from lsat.core.settings import Settings

__all__ = ["register"]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from lsat.adapters.lifecycle.registry import open_registry
    from lsat.adapters.model.base_model import load_base_model
    from lsat.adapters.model.recommender import LoraRecommender
    from lsat.adapters.serving import Scorer, StoreHistory
    from lsat.apps.stream_commands import resolve_kafka

    settings = resolve_kafka(settings)
    port = settings.scorer.port if args.port is None else args.port
    base = load_base_model(settings.base_model, cache_dir=settings.cache_dir)
    history = StoreHistory(settings.db_url)
    recommender = LoraRecommender(base, history.titles(), progress=False)
    registry = open_registry(settings.db_url)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with Scorer(recommender, registry, settings, history_source=history, port=port) as scorer:
        print(f"scorer on {scorer.url} (Ctrl-C to stop)", flush=True)
        done.wait()
    registry.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lsat serve``."""
    parser = subparsers.add_parser(
        "serve", help="run the hot-swapping scorer API", description=__doc__
    )
    parser.add_argument("--port", type=int, help="HTTP port (default: LSAT_SCORER_PORT, else 8080)")
    parser.set_defaults(func=_serve)
