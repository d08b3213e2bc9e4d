"""``lsat up``: the whole adaptation loop on one machine, until N windows are retrained.

Order: embedded tansu broker (unless a bootstrap address is configured) → worker and scorer
child processes → replay child (a dataset, by default MovieLens-100K fetched into the cache) →
once the first ``long_windows`` windows closed, ``lsat trainer --bootstrap-long`` on them, their
retrain requests skipped (committed for the trainer's group) → ``lsat trainer`` → the live
table until the trainer's ``lsat_retrain_total`` reaches N → everything stopped.

Each run writes a fresh SQLite file under ``home/runs/<stamp>/`` (unless a database URL is
configured) because the broker's memory storage starts empty: a database that has already seen
the replayed events would deduplicate them all. A child that exits unexpectedly stops the run
(no restart) and its log tail is printed.

>>> needed = events_needed([("u", t) for t in range(30)], samples=5, history_length=10)
>>> needed  # the user's 11th..15th events make the first five samples
15
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lsat.adapters.trainer.options import QualityOptions
from lsat.apps.orchestrator.errors import ChildCrashed, OrchestratorError
from lsat.apps.orchestrator.live_table import (
    COLUMNS,
    CombinedTracker,
    WindowRow,
    collect_rows,
    render,
    scrape,
    scrape_window_combined,
)
from lsat.apps.orchestrator.progress import group_cpu_seconds
from lsat.apps.orchestrator.retrain_skip import skip_retrain_requests
from lsat.apps.orchestrator.supervisor import ChildSpec, Supervisor
from lsat.apps.quality_flags import quality_argv
from lsat.core.settings import Settings, to_env

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from lsat.adapters.lifecycle.registry import RegistryStore
    from lsat.stream.broker import EmbeddedBroker
    from lsat.stream.store import SampleStore

log = logging.getLogger(__name__)

__all__ = ["UP_QUALITY", "Ports", "UpOptions", "UpRun", "child_env", "events_needed"]


TRAINING_CHILDREN = ("bootstrap-long", "trainer")
"""Children whose CPU time counts as progress (see :mod:`.progress`)."""

UP_QUALITY = QualityOptions(prompt_format="tallrec_hints")
"""The trainer's quality options in ``lsat up``: TALLRec with the item's and user's like counts
written into the prompt (the LLM learns faster with the collaborative signal as text: DESIGN
§4), short adapters from scratch, the hybrid fitted on the last 8 windows' rows."""


@dataclass(frozen=True)
class UpOptions:
    """Size and pace of a run. Defaults: a long adapter on the first 2 windows of 200, then 4
    windows retrained, sized for the 15 minutes a newcomer waits on a 2-core fp32 CPU (README,
    Quick start, has the measured table). The long adapter's bootstrap brings a rates-only
    hybrid combiner, so every retrained window shows long / short / combined / hybrid (what
    serves) / baseline side by side. At 400 samples SmolLM2 stays near chance (~2,000 let it
    learn, more than this CPU trains in 15 minutes): the table shows what the LLM adds, or not."""

    dataset: Path | None = None
    windows: int = 4
    window_size: int = 200
    long_windows: int = 2
    speed: float = 0.0
    free_ports: bool = False
    scorer_port: int | None = None  # None: settings.scorer.port (LSAT_SCORER_PORT)
    refresh_s: float = 2.0
    stall_timeout_s: float = 1800.0  # no visible progress (a window closed/evaluated/trained)
    quality: QualityOptions = UP_QUALITY  # the trainer's prompt, short start, combiner
    item_noun: str | None = None  # None: the dataset's (MovieLens: movie)


@dataclass(frozen=True)
class Ports:
    """Every port the run binds on 127.0.0.1."""

    broker: int
    worker_web: int
    worker_metrics: int
    trainer_metrics: int
    scorer: int

    @classmethod
    def choose(cls, settings: Settings, options: UpOptions) -> Ports:
        """The configured ports, or free ones with ``options.free_ports``."""
        if options.free_ports:
            from lsat.stream.broker import free_port

            return cls(*(free_port() for _ in range(5)))
        return cls(
            settings.kafka.embedded_port,
            settings.stream.worker_web_port,
            settings.stream.metrics_port,
            settings.trainer.metrics_port,
            settings.scorer.port if options.scorer_port is None else options.scorer_port,
        )


def child_env(settings: Settings, database_url: str) -> dict[str, str]:
    """The ``LSAT_*`` variables that give a child process the same settings (all of them,
    rendered by the settings schema), with ``home`` made absolute and this run's database.

    >>> env = child_env(Settings(home=Path("/h")), "sqlite:////h/x.sqlite")
    >>> env["LSAT_HOME"], env["LSAT_DATABASE_URL"], env["LSAT_TRAINER_LAYERS"]
    ('/h', 'sqlite:////h/x.sqlite', '4')
    """
    home = Path(settings.home).absolute()
    return to_env(settings.with_overrides(home=home, database_url=database_url))


def events_needed(events: Iterable[tuple[str, int]], samples: int, history_length: int) -> int:
    """How many (user, time) events, in order, yield ``samples`` samples (a sample needs
    ``history_length`` earlier events of its user); all of them if they yield fewer."""
    seen: dict[str, int] = {}
    made = count = 0
    for count, (user, _) in enumerate(events, start=1):
        if seen.get(user, 0) >= history_length:
            made += 1
            if made >= samples:
                return count
        seen[user] = seen.get(user, 0) + 1
    return count


def _lsat(*args: object) -> list[str]:
    return [sys.executable, "-m", "lsat.apps.cli", *(str(a) for a in args)]


class UpRun:
    """One ``lsat up`` run; :meth:`run` returns the exit code (0 done, 1 crash, 130 stopped)."""

    def __init__(
        self, settings: Settings, options: UpOptions, console: Console | None = None
    ) -> None:
        from rich.console import Console

        self.options = options
        self.console = console or Console(stderr=False)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        self.run_dir = Path(settings.home).absolute() / "runs" / stamp
        self.database_url = settings.database_url or f"sqlite:///{self.run_dir / 'lsat.sqlite'}"
        self.ports = p = Ports.choose(settings, options)
        stream = dataclasses.replace(
            settings.stream,
            window_max_samples=options.window_size,
            worker_web_port=p.worker_web,
            metrics_port=p.worker_metrics,
        )
        self.settings = dataclasses.replace(
            settings,
            stream=stream,  # the children's settings name the ports this run chose
            trainer=dataclasses.replace(settings.trainer, metrics_port=p.trainer_metrics),
            scorer=dataclasses.replace(settings.scorer, port=p.scorer),
        )
        self.supervisor = Supervisor(self.run_dir / "logs")
        self.stop_requested = threading.Event()
        self.urls: dict[str, str] = {}
        self.status = "starting"
        self.bootstrap_windows: list[int] = []
        self.quality = options.quality  # with the dataset's item noun once it is read
        self.live: Live | None = None
        self.combined = CombinedTracker()
        self.rows: list[WindowRow] = []
        self._last_status = ""
        self._printed: dict[str, list[str]] = {}

    # --- steps --------------------------------------------------------------------------
    def _dataset_path(self) -> Path:
        if self.options.dataset is not None:
            return Path(self.options.dataset)
        from lsat.data.fetch import fetch_movielens_100k

        self.status = "fetching MovieLens-100K"
        return fetch_movielens_100k(self.settings.cache_dir)

    def _replay_limit(self, path: Path) -> int:
        from lsat.data.loaders import load_dataset
        from lsat.data.types import HISTORY_LENGTH

        dataset = load_dataset(path, like_threshold=self.settings.stream.like_threshold)
        noun = self.options.item_noun or dataset.item_noun
        self.quality = dataclasses.replace(self.options.quality, item_noun=noun)
        o = self.options
        wanted = (o.long_windows + o.windows + 1) * o.window_size
        events = ((i.user_id, i.timestamp) for i in dataset.interactions)
        return events_needed(events, wanted, HISTORY_LENGTH)

    def _start_broker(self) -> EmbeddedBroker | None:
        if self.settings.kafka.bootstrap_servers:
            return None
        from lsat.stream.broker import EmbeddedBroker

        self.status = "starting the tansu broker"
        broker = EmbeddedBroker(
            self.settings.kafka, port=self.ports.broker, log_path=self.run_dir / "logs/broker.log"
        ).start()
        kafka = broker.kafka_settings
        self.settings = dataclasses.replace(self.settings, kafka=kafka)
        self.urls["kafka broker"] = kafka.bootstrap_servers or ""
        return broker

    def _env(self) -> dict[str, str]:
        return child_env(self.settings, self.database_url)

    def _start_services(self, dataset: Path, limit: int) -> None:
        p, host, env = self.ports, self.settings.dial_host, self._env()
        self.supervisor.start(
            ChildSpec(
                "worker",
                _lsat("worker", "--web-port", p.worker_web, "--metrics-port", p.worker_metrics,
                      "--window-size", self.options.window_size),
                env,
            )
        )  # fmt: skip
        self.urls["worker metrics"] = f"http://{host}:{p.worker_metrics}/metrics"
        self.supervisor.start(ChildSpec("scorer", _lsat("serve", "--port", p.scorer), env))
        self.urls["scorer API"] = f"http://{host}:{p.scorer}  (/score /recommend /adapters)"
        self.urls["scorer metrics"] = f"http://{host}:{p.scorer}/metrics"
        speed = self.options.speed or "max"
        replay = _lsat("replay", dataset, "--speed", speed, "--limit", limit)
        self.supervisor.start(ChildSpec("replay", replay, env, expected_exit=True))

    def _wait(
        self,
        done: Callable[[], bool],
        what: str,
        store: SampleStore,
        registry: RegistryStore,
    ) -> bool:
        """Refresh the view until ``done()``; False when a stop was requested."""
        self.status = what
        limit = self.options.stall_timeout_s
        deadline, seen = time.monotonic() + limit, self._progress()
        while not done():
            if self.stop_requested.is_set():
                return False
            self.supervisor.check()
            if time.monotonic() > deadline:
                raise OrchestratorError(f"no progress for {limit:.0f}s: {what}")
            self._refresh(store, registry)
            if (now := self._progress()) != seen:  # a slow machine is not a stalled one
                deadline, seen = time.monotonic() + limit, now
            self.stop_requested.wait(self.options.refresh_s)
        self._refresh(store, registry)
        return True

    def _progress(self) -> tuple[object, ...]:
        """What the table shows, and the CPU minutes the training children used: any change
        counts as progress for the stall timeout (a long adapter training on a busy machine
        is slow, not stalled)."""
        training = [c.pid for c in self.supervisor.children if c.spec.name in TRAINING_CHILDREN]
        cpu_minutes = int(group_cpu_seconds(training) // 60)
        return (cpu_minutes, *(tuple(row.cells()) for row in self.rows))

    def _bootstrap_long(self, store: SampleStore, registry: RegistryStore) -> bool:
        count = self.options.long_windows
        if count == 0:
            return True

        def enough() -> bool:
            return len(store.last_closed_windows(count)) >= count

        if not self._wait(enough, f"waiting for {count} window(s) for the long adapter",
                          store, registry):  # fmt: skip
            return False
        ids = sorted(w.id for w in store.last_closed_windows(10_000))[:count]
        self.bootstrap_windows = ids
        spec = ChildSpec(
            "bootstrap-long",
            _lsat("trainer", "--bootstrap-long", *quality_argv(self.quality), "--windows", *ids),
            self._env(),
            expected_exit=True,
        )
        child = self.supervisor.start(spec)
        what = f"training the long adapter on windows {ids}"
        if not self._wait(lambda: child.exit_code() == 0, what, store, registry):
            return False
        offset = skip_retrain_requests(self.settings, max(ids))
        log.info(
            "retrain requests of windows <= %d skipped (trainer resumes at %d)", max(ids), offset
        )
        return True

    def _train(self, store: SampleStore, registry: RegistryStore) -> bool:
        p, host = self.ports, self.settings.dial_host
        argv = _lsat("trainer", "--metrics-port", p.trainer_metrics, *quality_argv(self.quality))
        self.supervisor.start(ChildSpec("trainer", argv, self._env()))
        url = self.urls["trainer metrics"] = f"http://{host}:{p.trainer_metrics}/metrics"

        def jobs_done() -> bool:  # counted after a job registered, promoted and published
            finished = sum(
                value
                for name, labels, value in scrape(url, timeout_s=1.0)
                if name == "lsat_retrain_total" and labels.get("outcome") != "failed"
            )
            return finished >= self.options.windows

        what = f"retraining {self.options.windows} window(s)"
        return self._wait(jobs_done, what, store, registry)

    # --- view -----------------------------------------------------------------------------
    def _refresh(self, store: SampleStore, registry: RegistryStore) -> None:
        url = self.urls.get("trainer metrics")
        if url:
            self.combined.update(*scrape_window_combined(url, timeout_s=1.0))
        self.rows = collect_rows(store, registry, self.combined.by_window)
        view = render(self.rows, self.urls, self.status)
        if self.live is not None:
            self.live.update(view)
        else:  # not a terminal (a log file, CI): an append-only log of what changed
            if self.status != self._last_status:
                self.console.print(f"[lsat up] {self.status}", markup=False, highlight=False)
                self._last_status = self.status
            for row in self.rows:
                cells = row.cells()
                if self._printed.get(cells[0]) != cells:
                    pairs = zip(COLUMNS, cells, strict=True)
                    line = " | ".join(f"{name} {cell}" for name, cell in pairs)
                    self.console.print(f"[lsat up] {line}", markup=False, highlight=False)
                    self._printed[cells[0]] = cells

    # --- the run --------------------------------------------------------------------------
    def run(self, on_done: Callable[[UpRun], None] | None = None) -> int:
        """Run to completion; ``on_done(self)`` runs while every service is still up."""
        from rich.live import Live

        from lsat.adapters.lifecycle.registry import open_registry
        from lsat.stream.store import SampleStore

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.combined, self.rows = CombinedTracker(), []
        self._last_status, self._printed = "", {}
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        broker = store = registry = None
        self.live = None
        code = 0
        try:
            dataset = self._dataset_path()
            limit = self._replay_limit(dataset)
            broker = self._start_broker()
            store = SampleStore(self.database_url)
            registry = open_registry(self.database_url)
            self._start_services(dataset, limit)
            if self.console.is_terminal:
                self.live = Live(console=self.console, refresh_per_second=2).__enter__()
            finished = self._bootstrap_long(store, registry) and self._train(store, registry)
            if finished:
                self.status = f"done: {self.options.windows} window(s) retrained"
                self._refresh(store, registry)
                if self.live is None:
                    self.console.print(render(self.rows, self.urls, self.status))
                if on_done is not None:
                    on_done(self)
            else:
                self.status, code = "stopped by signal", 130
        except ChildCrashed as exc:
            self.status, code = f"stopped: {exc.name} crashed (exit {exc.code})", 1
            self._report(f"{exc}")
        except OrchestratorError as exc:
            self.status, code = f"stopped: {exc}", 1
            self._report(str(exc))
        finally:
            if self.live is not None:
                self.live.__exit__(None, None, None)
            self.supervisor.stop_all()
            if broker is not None:
                broker.stop()
            for closable in (store, registry):
                if closable is not None:
                    closable.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.console.print(f"[lsat up] {self.status}; logs in {self.run_dir / 'logs'}")
        return code

    def _report(self, message: str) -> None:
        self.console.print(f"[lsat up] {message}", markup=False, highlight=False)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop_requested.set()
