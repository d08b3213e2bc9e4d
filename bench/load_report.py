# ruff: noqa: E501
"""The report of ``bench_load.py``: whether RSS levelled off, and the markdown results page."""

from __future__ import annotations

import argparse
import os
from typing import Any

STABLE_FRACTION = 0.02
"""RSS counts as stable when no loaded phase's second half sets a new peak more than this above
every sample before it (the earlier phases and the phase's own first half). Peaks, not single
samples: a hot swap allocates the new adapter before the old one is freed, so a one-second sample
lands anywhere in that cycle; a leak keeps setting new highs."""


def rss_stable(rows: list[dict[str, Any]]) -> bool:
    """Whether the loaded phases' RSS levelled off: each loaded phase's second-half peak ≤
    (1 + ``STABLE_FRACTION``) × the peak of every sample before its second half.

    >>> one = {"rss_max_mb": 600.0}
    >>> rss_stable([one, {"rss_first_half_max_mb": 700.0, "rss_second_half_max_mb": 710.0}])
    True
    >>> rss_stable([one, {"rss_first_half_max_mb": 1141.0, "rss_second_half_max_mb": 1276.0}])
    False
    >>> many = {"rss_max_mb": 741.0, "rss_first_half_max_mb": 741.0, "rss_second_half_max_mb": 733.0}
    >>> rss_stable([one, many, {"rss_first_half_max_mb": 726.0, "rss_second_half_max_mb": 741.0}])
    True
    """
    before = rows[0]["rss_max_mb"]
    for row in rows[1:]:
        before = max(before, row["rss_first_half_max_mb"])
        if row["rss_second_half_max_mb"] > (1 + STABLE_FRACTION) * before:
            return False
        before = max(before, row["rss_second_half_max_mb"])
    return True


def report(
    rows: list[dict[str, Any]], args: argparse.Namespace, metrics: str, separation: float
) -> str:
    one, many, swapping = rows
    header = "| phase | clients | s | ok | req/s | p50 ms | p99 ms | 503 | errors | mixed | max abs(Δp) | swaps | short versions seen | RSS start → mid → end (max) MB |"
    lines = [header, "|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r['phase']} | {r['clients']} | {r['seconds']} | {r['ok']} | {r['rps']:.1f} | "
            f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['503']} | {r['errors']} | {r['mixed']} | "
            f"{r['deviation']:.1e} | "
            f"{r['swaps']} | {r['versions']} | {r['rss_start_mb']:.0f} → {r['rss_mid_mb']:.0f} → {r['rss_end_mb']:.0f} "
            f"({r['rss_max_mb']:.0f}) |"
        )
    swap_lines = [
        ln
        for ln in metrics.splitlines()
        if ln.startswith(("lsat_hot_swaps_total", "lsat_hot_swap_", "lsat_scoring_rejected_total"))
        and "_created" not in ln
        and "_bucket" not in ln
    ]
    model = "SmolLM2-135M" if args.smollm2 else "tiny random Llama (hidden 128, 4 layers)"
    return f"""# Load test of `lsat serve` ({model}, CPU, {os.cpu_count()} cores{", quick" if args.quick else ""})

`python bench/bench_load.py{" --quick" if args.quick else ""}{" --smollm2" if args.smollm2 else ""}{f" --duration {args.duration:g}" if args.duration != 60.0 and not args.quick else ""}{f" --memory-trim-s {args.memory_trim_s:g}" if args.memory_trim_s is not None else ""}{f" --bf16 {args.bf16}" if args.bf16 else ""}`{f" with ONEDNN_PRIMITIVE_CACHE_CAPACITY={os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY']} in the environment" if "ONEDNN_PRIMITIVE_CACHE_CAPACITY" in os.environ else ""}: `POST /score` with {args.items} items per request
(every answer checked for one version throughout; the versions' p_short differ by ≥ {separation:.3f}
summed over a request's items), keep-alive
clients, `lsat serve` as a child process with its default limits
(concurrency {args.max_concurrency or 8}, queue {args.max_queue if args.max_queue is not None else 32}),
freed memory handed back to the OS {"every " + format(args.memory_trim_s if args.memory_trim_s is not None else 1.0, "g") + " s at most" if (args.memory_trim_s is None or args.memory_trim_s > 0) else "never (LSAT_SCORER_MEMORY_TRIM_S=0)"}.

{chr(10).join(lines)}

- {many["clients"]} clients vs 1: **{many["rps"] / one["rps"]:.2f}×** requests/s (p99 {many["p99_ms"] / one["p99_ms"]:.1f}× the single client's).
- Hot swap every {args.swap_every}s vs none: **{swapping["rps"] / many["rps"]:.2f}×** requests/s, p99 {swapping["p99_ms"] / many["p99_ms"]:.2f}×;
  {swapping["swaps"]} swaps, {swapping["mixed"]} mixed responses, {swapping["errors"] + many["errors"] + one["errors"]} errors.
- RSS stable (no loaded phase's second half peaks more than {STABLE_FRACTION:.0%} above every sample before it): **{"yes" if rss_stable(rows) else "no"}**
  (peaks, first → second half: 16 clients {many["rss_first_half_max_mb"]:.0f} → {many["rss_second_half_max_mb"]:.0f} MB, with swaps {swapping["rss_first_half_max_mb"]:.0f} → {swapping["rss_second_half_max_mb"]:.0f} MB).
  Growth over the whole run: {swapping["rss_end_mb"] - one["rss_start_mb"]:+.0f} MB
  (16 clients: {many["rss_end_mb"] - many["rss_start_mb"]:+.0f} MB, of which {many["rss_end_mb"] - many["rss_mid_mb"]:+.0f} MB in the second half;
  with swaps: {swapping["rss_end_mb"] - swapping["rss_start_mb"]:+.0f} MB, {swapping["rss_end_mb"] - swapping["rss_mid_mb"]:+.0f} MB in the second half).

Scorer counters at the end:

```
{chr(10).join(swap_lines)}
```
"""
