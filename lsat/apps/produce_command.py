"""``lsat produce``: send JSON lines (a file or stdin) to a topic, keyed by user id.

A kcat-like producer that works against the embedded tansu broker (Debian's kcat 1.7.1 does
not). Lines that cannot be events (not UTF-8, not JSON, not an object, no usable key, too
large) are reported with their line number on stderr and not sent; the summary (sent, bytes,
skipped by reason, failed) goes to stderr, or as JSON to stdout with ``--json``. Exit status 0
only when every non-blank line was acknowledged by the broker.

    lsat produce events.jsonl
    cat events.jsonl | lsat produce --topic items --key-field item_id
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from lsat.apps.stream_commands import resolve_kafka
from lsat.core.settings import Settings

__all__ = ["register"]

SHOWN_REJECTIONS = 20


@contextmanager
def _input(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    with Path(path).open("rb") as handle:
        yield handle


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from lsat.stream.producer import ProduceError, Rejected, parse_lines, produce

    settings = resolve_kafka(settings)
    topic = args.topic or settings.kafka.topics.interactions
    key_field = None if args.no_key else args.key_field
    name = "<stdin>" if args.file == "-" else args.file
    shown = 0

    def report(rejected: Rejected) -> None:
        nonlocal shown
        shown += 1
        if shown <= args.show:
            print(f"{name}:{rejected.line}: {rejected.reason}: {rejected.detail}", file=sys.stderr)
        elif shown == args.show + 1:
            print(f"{name}: more rejected lines not shown (see the summary)", file=sys.stderr)

    try:
        with _input(args.file) as stream:
            summary = produce(
                parse_lines(stream, key_field, args.max_bytes),
                settings.kafka,
                topic,
                on_rejected=report,
                dry_run=args.dry_run,
                timeout_s=args.timeout,
            )
    except OSError as exc:
        print(f"lsat produce: cannot read {name}: {exc}", file=sys.stderr)
        return 1
    except ProduceError as exc:
        print(f"lsat produce: nothing sent: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        print(summary.describe(), file=sys.stderr)
    return 0 if summary.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``produce``."""
    from lsat.stream.producer import DEFAULT_KEY_FIELD, MAX_VALUE_BYTES

    p = subparsers.add_parser(
        "produce",
        help="send JSON lines (file or stdin) to a topic, keyed by user id, with a summary",
        description="Send one Kafka record per JSON line of FILE (default: stdin) to "
        "LSAT_KAFKA_BOOTSTRAP (else the local `lsat broker`). Bad lines are reported with their "
        "line number and not sent. Exit 0 only when every non-blank line was acknowledged.",
    )
    p.add_argument("file", nargs="?", default="-", metavar="FILE", help="JSON lines; '-' = stdin")
    p.add_argument("--topic", help="target topic (default: the interactions topic)")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument(
        "--key-field",
        default=DEFAULT_KEY_FIELD,
        help=f"field whose value is the record key (default: {DEFAULT_KEY_FIELD})",
    )
    keys.add_argument("--no-key", action="store_true", help="send records without keys")
    p.add_argument(
        "--max-bytes",
        type=int,
        default=MAX_VALUE_BYTES,
        help=f"largest line sent (default: {MAX_VALUE_BYTES:,})",
    )
    p.add_argument("--dry-run", action="store_true", help="check and count, send nothing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument(
        "--show",
        type=int,
        default=SHOWN_REJECTIONS,
        help=f"rejected lines printed on stderr (default: {SHOWN_REJECTIONS})",
    )
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the broker (default: 10)"
    )
    p.set_defaults(func=_produce)
