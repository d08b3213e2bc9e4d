"""Subcommands of the streaming side: ``lsat broker``, ``topics``, ``worker``, ``replay``,
``retrain``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import time
from datetime import UTC, datetime

from lsat.core.settings import Settings

__all__ = ["register", "resolve_kafka"]

log = logging.getLogger(__name__)


def resolve_kafka(settings: Settings) -> Settings:
    """Settings whose Kafka points at the configured brokers, else at ``lsat broker``'s port."""
    kafka = settings.kafka
    if kafka.bootstrap_servers:
        return settings
    local = f"127.0.0.1:{kafka.embedded_port}"
    return dataclasses.replace(settings, kafka=dataclasses.replace(kafka, bootstrap_servers=local))


def _timestamp(text: str) -> int:
    """Unix seconds or an ISO date/time (UTC when no zone is given)."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not unix seconds or ISO time: {text!r}") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    from lsat.stream.broker import EmbeddedBroker

    kafka = dataclasses.replace(settings.kafka, partitions=args.partitions)
    broker = EmbeddedBroker(kafka, port=args.port, storage_url=args.storage)
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    with broker:
        print(f"tansu broker on {broker.bootstrap_servers} (Ctrl-C stops it)", flush=True)
        try:
            while not stop and broker.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from kafka.errors import KafkaError

    from lsat.stream.topics import ensure_topics, topic_specs

    settings = resolve_kafka(settings)
    kafka = settings.kafka
    partitions = kafka.partitions if args.partitions is None else args.partitions
    try:
        topic_specs(kafka.topics, partitions)
    except ValueError as exc:
        print(f"lsat topics: {exc}", file=sys.stderr)
        return 2
    kafka = dataclasses.replace(kafka, partitions=partitions)
    try:
        created = ensure_topics(kafka, timeout_s=args.timeout)
    except (KafkaError, TimeoutError) as exc:
        print(f"could not create topics on {kafka.bootstrap_servers}: {exc!r}", file=sys.stderr)
        return 1
    for spec in topic_specs(kafka.topics, kafka.partitions):
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name}: {state}")
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from lsat.stream.worker import run_worker

    stream = settings.stream
    changes = {
        "worker_web_port": args.web_port,
        "metrics_port": args.metrics_port,
        "window_max_samples": args.window_size,
        "window_max_span_s": args.window_span,
    }
    stream = dataclasses.replace(stream, **{k: v for k, v in changes.items() if v is not None})
    settings = dataclasses.replace(resolve_kafka(settings), stream=stream)
    return run_worker(settings, loglevel="debug" if args.verbose else "info")


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from lsat.data.loaders import load_dataset
    from lsat.stream.replay import replay

    settings = resolve_kafka(settings)
    dataset = load_dataset(
        args.source, like_threshold=settings.stream.like_threshold, cache_dir=settings.cache_dir
    )
    checkpoint = settings.home / "replay" / f"{dataset.name}.json"
    summary = replay(
        dataset,
        settings.kafka,
        speed=args.speed,
        start_ts=args.start,
        end_ts=args.end,
        limit=args.limit,
        checkpoint_path=checkpoint,
        resume=args.resume,
        publish_items=not args.no_items,
        progress=sys.stderr.isatty(),
    )
    print(summary.describe())
    return 0


def _retrain(args: argparse.Namespace, settings: Settings) -> int:
    from lsat.stream.close_window import CloseWindowFailed, request_close_window

    if not args.now:
        print("nothing to do: pass --now to close the open window and request a retrain")
        return 2
    base_url = args.worker_url or (args.web_port and f"http://127.0.0.1:{args.web_port}")
    try:
        body = request_close_window(settings, base_url=base_url or None)
    except CloseWindowFailed as exc:
        hint = "" if exc.status else " (start `lsat worker` first)"
        print(f"{exc}{hint}")
        return 1
    if body["closed"]:
        print(
            f"closed window(s) {body['closed']}; retrain requested; "
            f"open window now {body['open_window']}"
        )
    else:
        print(f"open window {body['open_window']} is empty: nothing to retrain on")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``broker``, ``topics``, ``worker``, ``replay`` and ``retrain``."""
    from lsat.stream.replay import parse_speed

    p = subparsers.add_parser(
        "broker",
        help="run the embedded tansu Kafka broker (memory storage) with the project topics",
        description="Start tansu on 127.0.0.1, create the topics, run until Ctrl-C/SIGTERM.",
    )
    p.add_argument("--port", type=int, help="listen port (default: LSAT_KAFKA_EMBEDDED_PORT)")
    p.add_argument("--partitions", type=int, default=1, help="partitions of interactions/items")
    p.add_argument("--storage", default="memory://tansu/", help="only memory:// is accepted")
    p.set_defaults(func=_broker)

    p = subparsers.add_parser(
        "topics",
        help="create the project topics on Kafka (idempotent: existing topics are kept)",
        description="Create interactions, items (compacted), the DLQ and adapter.* topics on "
        "LSAT_KAFKA_BOOTSTRAP (else the local `lsat broker`); prints each topic's state.",
    )
    p.add_argument(
        "--partitions", type=int, help="partitions of new topics (LSAT_KAFKA_PARTITIONS)"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the broker")
    p.set_defaults(func=_topics)

    p = subparsers.add_parser(
        "worker",
        help="run the faust stream worker (validate, history, windows, store, retrain triggers)",
        description="Consume interactions/items from Kafka (LSAT_KAFKA_BOOTSTRAP, else the "
        "local `lsat broker`), store samples idempotently, publish retrain requests.",
    )
    p.add_argument("--web-port", type=int, help="faust web port on 127.0.0.1 (manual close)")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port on 127.0.0.1")
    p.add_argument("--window-size", type=int, help="samples per window (count trigger)")
    p.add_argument("--window-span", type=int, help="max event-time span of a window, seconds")
    p.set_defaults(func=_worker)

    p = subparsers.add_parser(
        "replay",
        help="publish a dataset's catalogue and interactions (event-time order) to Kafka",
        description="Replay DATASET_OR_PATH (any format load_dataset reads) onto the topics.",
    )
    p.add_argument("source", metavar="DATASET_OR_PATH")
    p.add_argument(
        "--speed",
        type=parse_speed,
        default=0.0,
        help="multiple of real time by event time; 0 or 'max' = as fast as possible",
    )
    p.add_argument("--start", type=_timestamp, help="first event time (unix s or ISO)")
    p.add_argument("--end", type=_timestamp, help="stop before this event time (unix s or ISO)")
    p.add_argument("--limit", type=int, help="publish at most this many interactions")
    p.add_argument("--resume", action="store_true", help="continue after the last published event")
    p.add_argument("--no-items", action="store_true", help="do not publish the catalogue")
    p.set_defaults(func=_replay)

    p = subparsers.add_parser(
        "retrain",
        help="close the open window now and publish a manual retrain request",
        description="Asks the running worker (LSAT_WORKER_URL, else 127.0.0.1 on "
        "LSAT_WORKER_WEB_PORT) to close its open window; presents LSAT_CLIENT_TOKEN, else "
        "LSAT_ADMIN_TOKEN (the worker refuses when it has no admin token).",
    )
    p.add_argument("--now", action="store_true", help="close the open window immediately")
    p.add_argument("--worker-url", help="the worker's URL, e.g. http://worker:6066")
    p.add_argument("--web-port", type=int, help="the worker's web port on 127.0.0.1")
    p.set_defaults(func=_retrain)
