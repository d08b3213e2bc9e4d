"""Ingest throughput before vs after a change: two git revisions, rounds interleaved.

Each revision is exported (``git archive``) to a temporary folder and ``bench_ingest.py`` (this
checkout's, the same script for both) runs against that tree's ``lsat`` packages, alternating
before / after for ``--rounds`` rounds, so both see the same machine load over time. Prints and
writes a markdown table and a plot (events/s per round and process CPU seconds).

    python bench/ingest_ab.py --before 995a099^ --after HEAD [--rounds 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results" / "ingest_isolation"

# Maps lsat, lsat.stream and lsat.adapters onto an exported tree (folders stay at its root, as
# the editable install maps them here), then runs a script with the remaining arguments.
LAUNCHER = """
import runpy, sys
tree, script = sys.argv[1], sys.argv[2]
sys.path[:0] = [tree, sys.argv[3]]
import lsat
lsat.__path__[:] = [tree + "/lsat", tree]
import lsat.stream.processor
assert lsat.stream.processor.__file__.startswith(tree), lsat.stream.processor.__file__
sys.argv = [script, *sys.argv[4:]]
runpy.run_path(script, run_name="__main__")
"""


def export(revision: str, into: Path) -> str:
    """``git archive`` of ``revision`` unpacked into ``into``; the short commit id. A folder
    (an already exported tree, e.g. a revision with a patch applied) is copied as it is."""
    if Path(revision).is_dir():
        shutil.copytree(revision, into)
        return Path(revision).name
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return commit


def run(tree: Path, out: Path, bench_args: list[str]) -> dict[str, float]:
    script = str(BENCH / "bench_ingest.py")
    cmd = [sys.executable, "-c", LAUNCHER, str(tree), script, str(BENCH), *bench_args]
    cmd += ["--output", str(out.with_suffix(".md")), "--json", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": ""})
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision or source-tree folder")
    parser.add_argument("--after", default="HEAD", help="git revision or source-tree folder")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="bench_ingest runs per round")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--poison-every", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="a paragraph appended to the results")
    args = parser.parse_args()
    bench_args = ["--repeat", str(args.repeat), "--events", str(args.events)]
    bench_args += ["--poison-every", str(args.poison_every)]
    load = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for name in ("before", "after"):
            trees[name] = (Path(tmp) / name, export(getattr(args, name), Path(tmp) / name))
        results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for k in range(args.rounds):
            for name in ("before", "after"):
                load.append(os.getloadavg()[0])
                got = run(trees[name][0], Path(tmp) / f"{name}{k}.json", bench_args)
                results[name].append(got)
                print(f"round {k + 1} {name}: {got['events'] / got['ingest_s']:,.0f} events/s, "
                      f"{got['ingest_cpu_s']:.2f} CPU s", flush=True)  # fmt: skip
    rate = {n: [r["events"] / r["ingest_s"] for r in rs] for n, rs in results.items()}
    cpu = {n: [r["ingest_cpu_s"] for r in rs] for n, rs in results.items()}
    commits = {n: trees[n][1] for n in trees}
    ratio = statistics.median(rate["after"]) / statistics.median(rate["before"])
    cpu_ratio = statistics.median(cpu["after"]) / statistics.median(cpu["before"])
    lines = [
        "# Ingest before vs after (bench/ingest_ab.py)",
        "",
        f"`bench_ingest.py` ({args.events:,} ml-100k events, one tansu partition, SQLite, "
        f"drift detectors on, best of {args.repeat} runs per round"
        + (f", every {args.poison_every}th message junk" if args.poison_every else "")
        + f") against before = `{commits['before']}` and after = `{commits['after']}`, "
        f"rounds interleaved; 1-minute load average during the runs "
        f"{min(load):.1f}–{max(load):.1f} on {os.cpu_count()} cores.",
        "",
        "| round | before events/s | after events/s | before CPU s | after CPU s |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {k + 1} | {rate['before'][k]:,.0f} | {rate['after'][k]:,.0f} "
            f"| {cpu['before'][k]:.2f} | {cpu['after'][k]:.2f} |"
            for k in range(args.rounds)
        ),
        f"| median | {statistics.median(rate['before']):,.0f} "
        f"| {statistics.median(rate['after']):,.0f} | {statistics.median(cpu['before']):.2f} "
        f"| {statistics.median(cpu['after']):.2f} |",
        "",
        f"**after / before: {ratio:.3f} in events/s (median), {cpu_ratio:.3f} in CPU seconds.**",
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    rounds = range(1, args.rounds + 1)
    for name, marker in (("before", "o"), ("after", "s")):
        left.plot(rounds, rate[name], marker=marker, label=f"{name} ({commits[name]})")
        right.plot(rounds, cpu[name], marker=marker, label=name)
    left.set(xlabel="round", ylabel="events/s (best of repeats)", ylim=(0, None), xticks=rounds)
    right.set(xlabel="round", ylabel="process CPU seconds", ylim=(0, None), xticks=rounds)
    left.legend()
    fig.suptitle("ingest throughput, interleaved rounds on a shared machine")
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output.with_suffix(".png"), dpi=100)
    lines.insert(2, f"![before vs after]({args.output.with_suffix('.png').name})\n")
    args.output.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
