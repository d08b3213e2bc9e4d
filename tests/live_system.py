"""ONE live system shared by the end-to-end test and the live dashboard test (session fixture
``live_system`` in tests/conftest.py).

A private tansu broker gets malformed events, then ``lsat up``'s orchestration
(:class:`lsat.apps.orchestrator.UpRun`) replays ml-100k with a label flip over its last third (so
the drift statistics move) through the real worker, ``lsat trainer --bootstrap-long``, the
trainer and the scorer on the tiny random Llama, while the real Prometheus (when installed)
scrapes all three every second. Once two windows are retrained, ``on_done`` (every service still
up) gathers what the end-to-end test checks and runs every dashboard query until each returns
data. Everything is stopped when the fixture returns; the tests assert on :class:`LiveResult`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lsat.core.settings import KafkaSettings, Settings

__all__ = ["NOT_COVERED", "LiveResult", "run_live_system"]

SCRAPE_S = 1
DASHBOARD_WAIT_S = 150
NOT_COVERED = {
    "annotation 'Drift detections'": "changes() of the detection counter needs a detection; "
    "LabelRateShift needs a 5,000-sample reference first (too long a replay here). The "
    "counter itself is covered: the worker creates it at 0 for every detector at start.",
}
"""Dashboard queries (by where) this test cannot make return data, and why (reported)."""
MALFORMED = (b"not json", b'{"user_id": "u1"}', b'{"user_id": "u1", "item_id": "1"}')


@dataclass
class LiveResult:
    """What the shared run saw while every service was up (``errors`` by part, as tracebacks)."""

    code: int = -1
    seen: dict[str, object] = field(default_factory=dict)
    bootstrap_windows: list[int] = field(default_factory=list)
    queries: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    prometheus: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    logs: Path | None = None


def http(url: str, body: dict | None = None, timeout_s: float = 30) -> tuple[int, dict]:
    """``(status, json)`` of a GET (or a JSON POST with ``body``); status 0 when unreachable."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


def tiny_settings(home: Path, kafka: KafkaSettings) -> Settings:
    """Tiny model, tiny windows, 1 s group joins on tansu, the given broker."""
    settings = Settings.from_env({}).with_overrides(home=home, base_model="tiny-llama")
    stream = dataclasses.replace(settings.stream, session_timeout_s=2.0, heartbeat_interval_s=0.5)
    trainer = dataclasses.replace(settings.trainer, max_samples_per_window=40)
    return dataclasses.replace(settings, stream=stream, trainer=trainer, kafka=kafka)


def flipped_dataset(source: Path, target: Path, flip_from_ts: int) -> Path:
    """A copy of a csv dataset whose events at or after ``flip_from_ts`` have the opposite
    label (rating 5 for a dislike, 1 for a like); other files are linked, not copied."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.name != "interactions.csv":
            (target / path.name).symlink_to(path)
    with (
        (source / "interactions.csv").open() as fin,
        (target / "interactions.csv").open("w") as out,
    ):
        rows = csv.DictReader(fin)
        writer = csv.DictWriter(out, fieldnames=rows.fieldnames or [])
        writer.writeheader()
        for row in rows:
            if int(row["timestamp"]) >= flip_from_ts:
                row["rating"] = "1" if float(row["rating"]) > 3 else "5"
            writer.writerow(row)
    return target


def prometheus_config(path: Path, ports: dict[str, int]) -> Path:
    jobs = "\n".join(
        f"  - job_name: lsat-{name}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']"
        for name, port in ports.items()
    )
    path.write_text(f"global:\n  scrape_interval: {SCRAPE_S}s\nscrape_configs:\n{jobs}\n")
    return path


def query_range(base: str, expr: str, start: float) -> list[dict]:
    params = urllib.parse.urlencode(
        {"query": expr, "start": start, "end": time.time(), "step": f"{SCRAPE_S}s"}
    )
    status, body = http(f"{base}/api/v1/query_range?{params}")
    if status != 200 or body.get("status") != "success":
        raise AssertionError(f"{expr!r}: HTTP {status} {body}")
    return body["data"]["result"]


def _guarded(result: LiveResult, part: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # reported to the test that owns the part
        result.errors[part] = traceback.format_exc()


def _end_to_end_view(run, seen: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    from lsat.adapters.lifecycle.registry import open_registry
    from lsat.apps.orchestrator.live_table import scrape, scrape_gauge

    with open_registry(run.database_url) as registry:
        seen["serving_short"] = registry.resolve("serving-short")
        seen["serving_long"] = registry.resolve("serving-long")
        seen["shorts"] = registry.list(kind="short")
    url = f"http://127.0.0.1:{run.ports.scorer}/adapters"
    wanted = seen["serving_short"].version  # type: ignore[union-attr]
    for _ in range(120):  # the swap follows adapter.versions asynchronously
        status, body = http(url, timeout_s=10)
        seen["adapters"] = body if status == 200 else None
        if seen["adapters"] and seen["adapters"]["versions"].get("short") == wanted:
            break
        time.sleep(0.5)
    metrics = run.urls["trainer metrics"]
    seen["auc"] = {
        a: scrape_gauge(metrics, "lsat_adapter_auc", {"adapter": a})
        for a in ("long", "short", "combined")
    }
    seen["rows"] = list(run.rows)
    # one scrape: the window id and the long AUC it describes, then that window's registry row
    samples = {(n, labels.get("adapter")): v for n, labels, v in scrape(metrics)}
    window = seen["window_id"] = samples.get(("lsat_window_id", None))
    seen["window_auc_long"] = samples.get(("lsat_adapter_auc", "long"))
    seen["window_auc_combined"] = samples.get(("lsat_adapter_auc", "combined"))
    seen["registry_auc_long"] = None
    for _ in range(20):  # recorded just after the gauges are set
        with open_registry(run.database_url) as registry:
            rows = registry.evaluations(window_id=int(window or -1))
        longs = [e.auc for e in rows if e.kind == "long"]
        if longs:
            seen["registry_auc_long"] = longs[-1]
            break
        time.sleep(0.25)


def _dashboard_view(run, result: LiveResult, base: str, started: float, users, items) -> None:  # type: ignore[no-untyped-def]
    from deploy_paths import dashboard_queries, with_macros_replaced

    scorer = f"http://127.0.0.1:{run.ports.scorer}"
    result.queries = [
        (where, with_macros_replaced(expr))
        for where, expr in dashboard_queries()
        if where not in NOT_COVERED
    ]

    def ask_scorer() -> None:
        for user, item in zip(users[:5], items[:5], strict=True):
            http(f"{scorer}/score", {"user_id": user, "item_id": item})
        http(f"{scorer}/score", {"user_id": users[0]})  # a 400

    deadline = time.monotonic() + DASHBOARD_WAIT_S
    while True:
        ask_scorer()
        result.missing = [
            f"{where}: {expr}"
            for where, expr in result.queries
            if not query_range(base, expr, started)
        ]
        if not result.missing or time.monotonic() > deadline:
            return
        run.supervisor.check()
        time.sleep(0.5)


def run_live_system(home: Path, ml100k_dir: Path) -> LiveResult:
    """Run the shared system once (blocking); everything is stopped when it returns."""
    import sys

    from kafka import KafkaProducer

    from lsat.apps.orchestrator import UpOptions, UpRun
    from lsat.apps.orchestrator.up import events_needed
    from lsat.data.loaders import load_dataset
    from lsat.data.types import HISTORY_LENGTH
    from lsat.stream.broker import EmbeddedBroker, free_port

    sys.path.insert(0, str(Path(__file__).parent / "deploy"))  # deploy_paths
    result = LiveResult()
    options = UpOptions(
        dataset=None, windows=2, window_size=40, long_windows=1, free_ports=True,
        refresh_s=0.5, stall_timeout_s=240,
    )  # fmt: skip
    source = load_dataset(ml100k_dir)
    wanted = (options.long_windows + options.windows + 1) * options.window_size
    limit = events_needed(
        ((i.user_id, i.timestamp) for i in source.interactions), wanted, HISTORY_LENGTH
    )
    flip_ts = source.interactions[limit * 2 // 3].timestamp
    dataset = flipped_dataset(ml100k_dir, home / "ml-100k-flipped", flip_ts)
    replayed = load_dataset(dataset).interactions[:limit]
    users = [it.user_id for it in replayed[-50:]]
    items = [it.item_id for it in replayed[-50:]]
    prometheus = shutil.which("prometheus")
    result.prometheus = prometheus is not None
    broker = EmbeddedBroker(
        KafkaSettings(partitions=1), port=free_port(), log_path=home / "tansu.log"
    )
    with broker:
        kafka = broker.kafka_settings
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
        for raw in MALFORMED:
            producer.send(kafka.topics.interactions, key=b"bad", value=raw)
        producer.flush()
        producer.close()
        run = UpRun(tiny_settings(home, kafka), dataclasses.replace(options, dataset=dataset))
        result.logs = run.run_dir / "logs"
        base, prom = "", None
        started = time.time()
        if prometheus is not None:
            ports = {
                "worker": run.ports.worker_metrics,
                "trainer": run.ports.trainer_metrics,
                "scorer": run.ports.scorer,
            }
            config = prometheus_config(home / "prometheus.yml", ports)
            prom_port = free_port()
            base = f"http://127.0.0.1:{prom_port}"
            prom = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={home / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=(home / "prometheus.log").open("wb"),
                stderr=subprocess.STDOUT,
            )

        def on_done(up: UpRun) -> None:
            _guarded(result, "end_to_end", lambda: _end_to_end_view(up, result.seen))
            if prom is not None:
                _guarded(
                    result,
                    "dashboard",
                    lambda: _dashboard_view(up, result, base, started, users, items),
                )

        try:
            result.code = run.run(on_done=on_done)
            result.bootstrap_windows = list(run.bootstrap_windows)
        finally:
            if prom is not None:
                prom.terminate()
                try:
                    prom.wait(20)
                except subprocess.TimeoutExpired:
                    prom.kill()
                    prom.wait()
    return result
