"""Run the stream worker: sample store + processor + faust app + ``/metrics`` server.

``run_worker(settings)`` blocks until SIGINT/SIGTERM. A manual window close is a ``POST`` to
``http://127.0.0.1:<worker_web_port>/lsat/windows/close`` with ``Authorization: Bearer <admin
token>`` (refused when no token is configured); ``lsat retrain --now`` does that for you.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time

import faust
from aiokafka import TopicPartition
from faust.web import Request, Response, View

from lsat.core.admin import AdminDenied, check_bearer
from lsat.core.settings import Settings
from lsat.stream.app import WorkerApp, build_app
from lsat.stream.close_window import CLOSE_WINDOW_PATH
from lsat.stream.metrics import MetricsServer, StreamMetrics, lag_messages
from lsat.stream.processor import StreamProcessor
from lsat.stream.store import SampleStore

__all__ = [
    "CLOSE_WINDOW_PATH",
    "GC_THRESHOLDS",
    "LAG_INTERVAL_S",
    "LOOP_PROBE_INTERVAL_S",
    "TICK_INTERVAL_S",
    "build_worker",
    "run_worker",
    "tune_gc",
]

log = logging.getLogger(__name__)
LAG_INTERVAL_S = 2.0
LOOP_PROBE_INTERVAL_S = 0.25
"""How often the event loop's lag is sampled (``lsat_stream_event_loop_lag_seconds``)."""
TICK_INTERVAL_S = 1.0
"""How often idle partitions are checked and overdue retrain requests re-sent."""


def build_worker(
    settings: Settings, store: SampleStore | None = None, metrics: StreamMetrics | None = None
) -> tuple[WorkerApp, StreamProcessor]:
    """The faust app wired to a :class:`StreamProcessor` (state restored from the store)."""
    store = store or SampleStore(settings.db_url)
    stream = settings.stream
    processor = StreamProcessor(
        settings,
        store,
        metrics,
        max_event_bytes=stream.max_event_bytes,
        dlq_payload_bytes=stream.dlq_payload_bytes,
        dlq_record_bytes=stream.dlq_record_bytes,
    )

    def count_assignment(assigned: set[TopicPartition]) -> None:
        processor.metrics.partition_assignments.inc()
        known = settings.kafka.partitions
        extra = sorted(tp.partition for tp in assigned if tp.partition >= known)
        if extra:  # the global watermark would not wait for partitions it does not expect
            log.warning(
                "%s has partition(s) %s beyond LSAT_KAFKA_PARTITIONS=%d: set it to the topic's "
                "partition count on every worker",
                settings.kafka.topics.interactions,
                extra,
                known,
            )

    app = build_app(
        settings,
        processor,
        on_assigned=count_assignment,
        retry_first_s=stream.store_retry_first_s,
        retry_max_s=stream.store_retry_max_s,
    )
    send_all, serial = app.lsat_send_all, app.lsat_serial
    token = settings.admin_token

    @app.task
    async def probe_event_loop() -> None:
        """How late a short sleep wakes up: the loop's stall, which heartbeats share."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(LOOP_PROBE_INTERVAL_S)
            late = time.monotonic() - started - LOOP_PROBE_INTERVAL_S
            processor.metrics.event_loop_lag.observe(max(0.0, late))

    @app.page(CLOSE_WINDOW_PATH)
    class CloseWindow(View):
        async def post(self, request: Request) -> Response:
            try:
                check_bearer(token, request.headers.get("Authorization"), "closing a window")
            except AdminDenied as denied:
                return self.json({"error": str(denied)}, status=denied.status)
            messages = await serial(processor.close_now)
            await send_all(messages)
            closed = [json.loads(m.value)["window_id"] for m in messages]
            return self.json({"closed": closed, "open_window": processor.state.window.window_id})

    @app.timer(TICK_INTERVAL_S)
    async def tick() -> None:
        """Close windows held only by idle partitions; re-send overdue retrain requests."""
        try:
            messages = await serial(processor.tick)
        except Exception as error:  # the store is down: the next tick tries again
            log.warning("timer: %r", error)
            return
        await send_all(messages)

    @app.timer(LAG_INTERVAL_S)
    async def export_lag() -> None:
        """Lag = the fetch high watermark minus our position (not ListOffsets, which tansu
        under-reports)."""
        interactions = app.lsat_interactions
        assigned = [(tp, interactions.highwater(tp)) for tp in interactions.assignment()]
        items, faust_consumer = settings.kafka.topics.items, app.consumer
        assigned += [  # (faust's own assignor topic left out)
            (tp, faust_consumer.highwater(tp))
            for tp in faust_consumer.assignment()
            if tp.topic == items
        ]
        for tp, highwater in assigned:
            position = processor.positions.get((tp.topic, tp.partition))
            lag = lag_messages(highwater, position)
            processor.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                lag
            )

    return app, processor


GC_THRESHOLDS = (50_000, 20, 20)
"""The worker's ``gc.set_threshold`` (Python's default: 700, 10, 10)."""


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a process that allocates per event.

    A batch of 2,000 events keeps tens of thousands of young objects alive until its commit;
    with the default thresholds they are promoted and sweep the whole heap (faust, aiokafka,
    SQLAlchemy) in frequent full collections. ``gc.freeze()`` moves what start-up allocated out
    of every collection, and a larger first-generation threshold lets a batch's objects die
    before one. Measured (``bench_workers.py``, 1 worker, SQLite, interleaved runs): 5.4k
    events/s without, 6.9k-9.0k with (processor thread CPU ~155 -> ~85-110 µs/event).
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_worker(settings: Settings, loglevel: str = "info") -> int:
    """Start the metrics server and the faust worker; returns when the worker stops."""
    metrics = StreamMetrics()
    server = MetricsServer(metrics, settings.stream.metrics_port, settings.bind_host).start()
    log.info("metrics on http://%s:%d/metrics", settings.bind_host, server.port)
    store = SampleStore(settings.db_url)
    app, _ = build_worker(settings, store, metrics)
    tune_gc()
    try:
        worker = faust.Worker(app, loglevel=loglevel, quiet=True)
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        server.stop()
        store.close()
    return 0
