"""The pure parts of ``bench_workers.py``: one run's record, ``/proc`` and ``/metrics`` readers,
the cProfile buckets, the Markdown table and the plot."""

from __future__ import annotations

import json
import marshal
import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BUCKETS",
    "Run",
    "machine_load",
    "parse_metrics",
    "plot_rates",
    "profile_buckets",
    "read_profile",
    "thread_cpu_s",
    "write_report",
]

BUCKETS = ("decode", "pipeline", "store")
"""How the processor thread's time inside ``handle_interactions`` is split (module doc of
:func:`profile_buckets`)."""


@dataclass
class Run:
    """One timed run: ``workers`` workers, one store, a fresh broker/topic/group."""

    store: str
    workers: int
    round: int
    events: int
    seconds: float
    produce_s: float
    raw_s: float
    stored: int
    distinct: int
    dead: int
    samples: int
    processing_s: float
    """Wall seconds inside the processor, summed over workers (their metrics)."""
    loop_cpu_s: float
    """CPU seconds of the workers' event-loop threads (faust, aiokafka)."""
    store_cpu_s: float
    """CPU seconds of the workers' other threads (the processor's thread, mostly)."""
    broker_cpu_s: float
    profiled: bool = False
    buckets: dict[str, Any] | None = None
    drained: int = 0
    """Events still to store when the producer had every event acknowledged…"""
    drain_s: float = 0.0
    """…and the seconds the workers then took to store them (no producer sharing the CPU)."""

    @property
    def drain_rate(self) -> float | None:
        """Events/s once the producer was done, when it left a backlog of ≥ 10 % of the run."""
        if self.drained < self.events // 10 or self.drain_s <= 0:
            return None
        return self.drained / self.drain_s

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_rate(self) -> float:
        """Events per CPU second of the workers (both threads): less sensitive to other load
        on the machine than events/s."""
        return self.events / max(self.loop_cpu_s + self.store_cpu_s, 1e-9)

    @property
    def exactly_once(self) -> bool:
        """Every event stored once or dead-lettered once."""
        return self.stored == self.distinct and self.stored + self.dead == self.events

    def line(self) -> str:
        tag = " (cProfile)" if self.profiled else ""
        return (
            f"{self.store} x{self.workers}{tag}: {self.events:,} events in {self.seconds:.2f} s "
            f"= {self.rate:,.0f}/s (produce {self.produce_s:.2f} s, in processor "
            f"{self.processing_s:.2f} s, loop CPU {self.loop_cpu_s:.2f} s, processor-thread CPU "
            f"{self.store_cpu_s:.2f} s, tansu CPU {self.broker_cpu_s:.2f} s, raw read "
            f"{self.raw_s:.3f} s, then {self.drained:,} more stored in {self.drain_s:.2f} s); "
            f"stored {self.stored:,} + dead {self.dead} "
            f"{'ok' if self.exactly_once else 'MISMATCH'}"
        )


def machine_load() -> str:
    """The 1/5/15-minute load averages, as ``uptime`` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def parse_metrics(text: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text exposition, by name.

    >>> parse_metrics("# HELP x y\\nlsat_a_total 3.0\\nlsat_b{k=\\"v\\"} 1\\nlsat_c_sum 0.5\\n")
    {'lsat_a_total': 3.0, 'lsat_c_sum': 0.5}
    """
    found = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" in line or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        found[name] = float(value)
    return found


def thread_cpu_s(pid: int) -> tuple[float, float]:
    """(main thread, all other threads) CPU seconds of a live process, from ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if task.name == str(pid):
            main += seconds
        else:
            other += seconds
    return main, other


# --- cProfile ------------------------------------------------------------------------------

Func = tuple[str, int, str]


def read_profile(path: Path) -> dict[Func, Any]:
    """Stats written by ``profiled_worker.py`` (the ``pstats`` dict)."""
    return marshal.loads(path.read_bytes())


def _find(stats: dict[Func, Any], filename: str, name: str) -> Func | None:
    for func in stats:
        if func[2] == name and func[0].endswith(filename):
            return func
    return None


def _bucket(func: Func) -> str:
    filename, _, name = func
    if name == "_parse" and filename.endswith("processor.py"):
        return "decode"
    store_files = ("window_keeper.py", "dlq.py", "catalogue.py", "contextlib.py")
    if "/store/" in filename or "sqlalchemy" in filename or filename.endswith(store_files):
        return "store"
    return "pipeline"


def _idle(func: Func) -> bool:
    """A thread waiting for work (the executor's queue, locks, the event loop's poll)."""
    waits = ("_queue", "acquire", "poll' of 'select", "select' of 'select", "control' of")
    return func[0].endswith("threading.py") or any(w in func[2] for w in waits)


def top_functions(stats: dict[Func, Any], top: int = 12) -> list[tuple[str, int, float, float]]:
    """The ``top`` functions by own time, waits left out: (name, calls, own s, cumulative s)."""
    busy = [kv for kv in stats.items() if not _idle(kv[0])]
    ranked = sorted(busy, key=lambda kv: kv[1][2], reverse=True)[:top]
    return [(f"{Path(f[0]).name}:{f[1]}({f[2]})", row[1], row[2], row[3]) for f, row in ranked]


def profile_buckets(stats: dict[Func, Any], top: int = 12) -> dict[str, Any]:
    """Split the processor thread's time in ``handle_interactions`` (wall clock, cProfile):

    * ``decode``: ``_parse`` (JSON → validated interaction), wherever called;
    * ``store``: everything ``_interactions_once`` calls that talks to the database — the
      transaction's begin/commit (``contextlib``), store reads and writes (``stream/store``,
      SQLAlchemy), the window keeper's lock/read/save, dead-letter and category look-ups;
    * ``pipeline``: the rest of ``handle_interactions`` (history, like counts, drift, window
      step, building the rows, metrics), including ``_interactions_once``'s own loop.

    Also the SQL round trips (``batches``, SQLAlchemy ``statements`` executed — an
    ``executemany`` counts once — and ``commits``; the thread's timer work included) and the
    ``top`` functions by own time.
    """
    handle = _find(stats, "processor.py", "handle_interactions")
    once = _find(stats, "processor.py", "_interactions_once")
    if handle is None or once is None:
        return {"total": 0.0, **dict.fromkeys(BUCKETS, 0.0), "top": []}
    total = stats[handle][3]
    parse = _find(stats, "processor.py", "_parse")
    decode = stats[parse][3] if parse is not None else 0.0
    store = sum(
        callers[once][3]
        for func, (_, _, _, _, callers) in stats.items()
        if once in callers and _bucket(func) == "store"
    )
    found = {"decode": decode, "pipeline": total - decode - store, "store": store}

    def calls(filename: str, name: str) -> int:
        func = _find(stats, filename, name)
        return stats[func][1] if func is not None else 0

    sql = {
        "batches": stats[once][1],
        "statements": calls("engine/base.py", "_execute_context"),
        "commits": calls("engine/base.py", "_commit_impl"),
    }
    return {"total": total, **found, **sql, "top": top_functions(stats, top)}


# --- report --------------------------------------------------------------------------------


def _groups(runs: Sequence[Run]) -> dict[tuple[str, int], list[Run]]:
    groups: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        if not run.profiled:
            groups.setdefault((run.store, run.workers), []).append(run)
    return groups


def summary_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Per store × worker count: best and median seconds and events/s, ratios."""
    groups = _groups(runs)
    rows = []
    for (store, workers), group in sorted(groups.items()):
        secs = [r.seconds for r in group]
        one = groups.get((store, 1), group)
        raw = min(r.raw_s for r in runs if r.store == store)
        n = group[0].events
        best, median = n / min(secs), n / statistics.median(secs)
        rows.append(
            {
                "store": store,
                "workers": workers,
                "runs": len(group),
                "best_s": min(secs),
                "median_s": statistics.median(secs),
                "best_rate": best,
                "median_rate": median,
                "vs_one_best": best / (n / min(r.seconds for r in one)),
                "vs_one_median": median / (n / statistics.median([r.seconds for r in one])),
                "raw_rate": n / raw,
                "vs_raw": best / (n / raw),
                "produce_s": statistics.median(r.produce_s for r in group),
                "cpu_rate": statistics.median(r.cpu_rate for r in group),
                "drain_rates": [d for r in group if (d := r.drain_rate) is not None],
                "exactly_once": all(r.exactly_once for r in group),
                "samples": sorted({r.samples for r in group}),
                "dead": sorted({r.dead for r in group}),
            }
        )
    return rows


def _time_rows(runs: Sequence[Run]) -> list[str]:
    """Where the time goes in one worker (median 1-worker run per store): CPU µs per event of
    the event loop and of the processor thread, the latter split by the profile's shares."""
    lines = []
    for (store, workers), group in sorted(_groups(runs).items()):
        if workers != 1:
            continue
        run = sorted(group, key=lambda r: r.seconds)[len(group) // 2]
        prof = next((r.buckets for r in runs if r.profiled and r.store == store), None)
        us = 1e6 / run.events
        loop, thread = run.loop_cpu_s * us, run.store_cpu_s * us
        split = "–"
        if prof and prof["total"] > 0:
            shares = [prof[b] / prof["total"] for b in BUCKETS]
            split = " / ".join(f"{thread * share:.0f}" for share in shares)
            split += " (" + " / ".join(f"{100 * share:.0f} %" for share in shares) + ")"
        lines.append(
            f"| {store} | {run.seconds:.2f} | {run.processing_s:.2f} | {thread:.0f} | {split} "
            f"| {loop:.0f} | {loop + thread:.0f} | {1e6 / (loop + thread):,.0f} "
            f"| {run.broker_cpu_s:.2f} |"
        )
    return lines


def _function_table(rows: Sequence[tuple[str, int, float, float]]) -> list[str]:
    return [
        "| function | calls | own s | cumulative s |",
        "|---|---:|---:|---:|",
        *(f"| `{name}` | {calls:,} | {own:.3f} | {cum:.3f} |" for name, calls, own, cum in rows),
    ]


def render(runs: Sequence[Run], context: dict[str, Any]) -> str:
    """The Markdown report."""
    rows = summary_rows(runs)
    n = runs[0].events
    lines = [
        "# Ingest through real workers (bench/bench_workers.py)",
        "",
        f"{n:,} ML-100K events produced at full speed to `interactions` with "
        f"{context['partitions']} partitions (embedded tansu), consumed by N `lsat worker` "
        "processes of one fresh consumer group into a fresh store; timed from the first event "
        "produced to the store holding every event (polled every 20 ms). Worker defaults "
        "(drift detection on, count windows of 2,000, retrain requests sent), no catalogue "
        f"published. Rounds interleaved (1, 2, 1, 2 workers). Commit {context['commit']}; "
        f"load average (1/5/15 min) {context['load_start']} at the start, "
        f"{context['load_end']} at the end ({context['minutes']:.1f} min), 2-core machine "
        "shared with other engineers' work.",
        "",
        "| store | workers | runs | best s | median s | events/s best | events/s median "
        "| × 1 worker (best / median) | × raw | events per worker CPU s | produce s "
        "| backlog after producing: events/s best | every event once |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        drain = f"{max(r['drain_rates']):,.0f}" if r["drain_rates"] else "–"
        lines.append(
            f"| {r['store']} | {r['workers']} | {r['runs']} | {r['best_s']:.2f} "
            f"| {r['median_s']:.2f} | {r['best_rate']:,.0f} | {r['median_rate']:,.0f} "
            f"| {r['vs_one_best']:.2f} / {r['vs_one_median']:.2f} | {r['vs_raw']:.3f} "
            f"| {r['cpu_rate']:,.0f} | {r['produce_s']:.2f} "
            f"| {drain} "
            f"| {'yes' if r['exactly_once'] else 'NO'} "
            f"({r['samples'][0]:,} samples, {r['dead'][0]} dead letters) |"
        )
    raws = ", ".join(f"{r['store']} run {r['raw_rate']:,.0f}" for r in rows if r["workers"] == 1)
    lines += [
        "",
        f"Raw ceiling: a plain aiokafka consumer (no group, no processing) reading the same "
        f"topic after each run, best events/s: {raws}. *Events per worker CPU s* (median): "
        "events divided by the CPU seconds of all workers' threads during the run — what the "
        "workers would reach with a core each to themselves. *Backlog after producing*: the "
        "producer (kafka-python, in the benchmark's process) shares the 2 cores with the "
        "workers and the broker while it sends; the events not yet stored when it had every "
        "event acknowledged, divided by the seconds the workers then took to store them, is "
        "the workers' rate without it (shown when that backlog held ≥ 10 % of the events).",
        "",
        "## Where the time goes in one worker (median 1-worker run)",
        "",
        "| store | end to end s | in processor s (wall) | processor thread CPU µs/event "
        "| of which decode / pipeline / store commit µs | event loop CPU µs/event "
        "(faust, aiokafka) | worker CPU µs/event | = events/s with a free core | tansu CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *_time_rows(runs),
        "",
        "*In processor*: `lsat_stream_processing_seconds` (sum), the processor thread's wall "
        "time in `handle_interactions`; end to end minus that is the thread waiting for the "
        "consumer's next batch. CPU from `/proc` (per thread, during the timed run). The "
        "processor thread's CPU is split by the CPU shares of the cProfile'd run "
        "(`--profile`, per-thread CPU clock): *decode* = JSON → validated event, *store commit* "
        "= the client side of every SQL statement of the batch (lock, reads, inserts, commit; "
        "the database server's own time is not in it), *pipeline* = the rest (history, like "
        "counts, drift, the global window, rows, metrics). *Event loop*: the worker's main thread "
        "(faust's stream and acks, aiokafka's fetches, offset commits, sending retrain requests, "
        "the timers) — the faust/consumer overhead. Both threads share one GIL, so their CPU "
        "adds up: *events/s with a free core* = 10⁶ / worker CPU µs per event.",
    ]
    for run in runs:
        if run.profiled and run.buckets:
            b = run.buckets
            lines += [
                "",
                f"### cProfile of one worker, {run.store} ({run.seconds:.2f} s end to end under "
                f"the profiler; `handle_interactions` {b['total']:.2f} CPU s)",
                "",
                f"SQL on the processor thread: {b.get('statements', 0):,} statements and "
                f"{b.get('commits', 0):,} commits for {b.get('batches', 0):,} batches "
                "(the 1 s timer's reads included).",
                "",
                "Processor thread (top functions by own time, waits left out):",
                "",
                *_function_table(b["top"]),
            ]
            if b.get("loop_top"):
                lines += [
                    "",
                    "Event-loop thread (faust, aiokafka; CPU clock, the loop's idle poll left "
                    "out):",
                    "",
                    *_function_table(b["loop_top"]),
                ]
    lines += ["", "All runs:", ""]
    lines += [f"- {r.line()}" for r in runs]
    if context.get("note"):
        lines += ["", context["note"]]
    return "\n".join(lines) + "\n"


def plot_rates(runs: Sequence[Run], path: Path) -> None:
    """Events/s by worker count × store (bar = best, dot = median)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary_rows(runs)
    stores = sorted({r["store"] for r in rows})
    counts = sorted({r["workers"] for r in rows})
    fig, ax = plt.subplots(figsize=(6, 3.6))
    width = 0.8 / len(counts)
    for k, workers in enumerate(counts):
        xs, best, median = [], [], []
        for s, store in enumerate(stores):
            row = next((r for r in rows if r["store"] == store and r["workers"] == workers), None)
            if row is not None:
                xs.append(s + (k - (len(counts) - 1) / 2) * width)
                best.append(row["best_rate"])
                median.append(row["median_rate"])
        ax.bar(xs, best, width, label=f"{workers} worker{'s' if workers > 1 else ''} (best)")
        ax.plot(xs, median, "k.", markersize=8)
    ax.plot([], [], "k.", label="median")
    ax.set_xticks(range(len(stores)), stores)
    ax.set_ylabel("events/s end to end")
    ax.set_title(f"lsat worker ingest, {runs[0].events:,} ML-100K events")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def write_report(
    runs: Sequence[Run], output: Path, *, plot: bool = True, context: dict[str, Any]
) -> None:
    """``output`` (Markdown), every run as JSON next to it and, with ``plot``, the PNG."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    tmp.write_text(render(runs, context))
    tmp.replace(output)
    numbers = {"context": context, "runs": [asdict(r) for r in runs]}
    output.with_suffix(".json").write_text(json.dumps(numbers, indent=1))
    if plot:
        plot_rates(runs, output.with_suffix(".png"))
