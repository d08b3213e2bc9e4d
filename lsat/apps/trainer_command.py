"""``lsat trainer``: consume ``adapter.retrain`` (or ``--bootstrap-long`` once) and exit code."""

from __future__ import annotations

import argparse
import logging

from lsat.adapters.trainer.retry import RetryPolicy
from lsat.apps.quality_flags import add_quality_arguments, options_from_args
from lsat.core.settings import Settings

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``trainer`` subcommand."""
    parser = subparsers.add_parser("trainer", help="train, guard and publish adapters")
    parser.add_argument(
        "--bootstrap-long",
        action="store_true",
        help="train the long adapter on the first closed windows and exit",
    )
    parser.add_argument("--windows", type=int, nargs="*", help="window ids for --bootstrap-long")
    parser.add_argument("--max-jobs", type=int, default=None, help="exit after N jobs")
    parser.add_argument("--metrics-port", type=int, default=None)
    add_quality_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of ``lsat trainer``."""
    from lsat.adapters.lifecycle.publisher import ServingSetPublisher, publish_current
    from lsat.adapters.lifecycle.registry import open_registry
    from lsat.adapters.trainer import TrainerMetrics, bootstrap_long, run_trainer
    from lsat.stream.metrics import MetricsServer
    from lsat.stream.store import SampleStore

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = options_from_args(args)
    if args.bootstrap_long:
        with open_registry(settings.db_url, artifact_store=settings.artifact_store) as registry:
            store = SampleStore(settings.db_url)
            try:
                version = bootstrap_long(
                    settings, registry, store=store, window_ids=args.windows, options=options
                )
            finally:
                store.close()
            with ServingSetPublisher(settings.kafka) as publish:
                publish_current(registry, publish)
        print(f"long adapter {version.key} serving and published")
        return 0
    metrics = TrainerMetrics()
    port = settings.trainer.metrics_port if args.metrics_port is None else args.metrics_port
    server = MetricsServer(metrics, port, host=settings.bind_host).start()
    try:
        run_trainer(
            settings,
            metrics=metrics,
            max_jobs=args.max_jobs,
            options=options,
            retry=RetryPolicy.from_settings(settings.trainer),
        )
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()
    return 0
