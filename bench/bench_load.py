"""Load test of ``lsat serve`` over real HTTP: throughput, tail latency, errors, memory, and hot
swaps under load that must never mix versions inside one response.

Starts an embedded tansu broker and ``lsat serve`` as a child process (tiny random Llama by
default, ``--smollm2`` for the real model) serving a long and a short adapter (two short
versions registered, with different α). Then, side by side in one run:

1. one client for a while (the sequential baseline),
2. ``--clients`` (16) concurrent keep-alive clients for ``--duration`` (60 s) seconds,
3. the same while ``POST /admin/promote`` flips the short adapter every ``--swap-every`` (5) s
   (the real path: registry alias → ``adapter.versions`` → consumer → swap).

Every client sends ``POST /score`` with one of a few fixed payloads. Before the load, each
short version's scores for each payload are recorded one by one; during the load every 200
answer must be one version throughout, else it counts as *mixed*: the α of the version it
names, p_combined = α·p_long + (1−α)·p_short for every item, and p_short nearer to that
version's reference than to the other's. The largest |Δp| from the reference is reported
(numeric noise of batching several requests in one forward, bf16). Errors are anything but
200 and deliberate 503s (overload, counted apart). The child's RSS is sampled every second.

Run: ``python bench/bench_load.py [--quick] [--smollm2]``; writes ``bench/results/load.md``
(``load_quick.md`` with ``--quick``). Last line: ``load rps=… p99_ms=… swap_rps=… errors=…
mixed=… rss_growth_mb=… rss_stable=…``; the exit status is 1 when there were errors, mixed
answers, or the RSS did not level off.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from load_report import report, rss_stable
from peft import LoraConfig, get_peft_model
from peft.utils import get_peft_model_state_dict

from lsat.adapters.lifecycle.artifacts import save_adapter, sha256_file
from lsat.adapters.lifecycle.registry import RegistryStore, open_registry
from lsat.adapters.model.base_model import load_base_model, tiny_llama
from lsat.core.settings import Settings, to_env
from lsat.data.types import Item
from lsat.stream.broker import EmbeddedBroker, free_port
from lsat.stream.store import SampleStore

RESULTS = Path(__file__).parent / "results"
TOKEN = "bench-admin-token"
ALPHAS = {1: 0.3, 2: 0.6}


def add_adapter(
    registry: RegistryStore,
    base: torch.nn.Module,
    kind: str,
    seed: int,
    folder: Path,
    alpha: float | None,
) -> int:
    """Save a random LoRA (q/v, r 8) for ``base`` and register it; its version."""
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    torch.manual_seed(seed)
    model = get_peft_model(base, config, adapter_name="tmp")
    state = {
        k: v.detach().clone() * 0.5
        for k, v in get_peft_model_state_dict(model, adapter_name="tmp").items()
    }
    model.unload()
    path = save_adapter(
        folder / f"{kind}-{seed}", state, config, {"kind": kind, "base_model": "bench"}
    )
    metrics = {} if alpha is None else {"alpha": alpha}
    sha = sha256_file(path / "adapter_model.safetensors")
    return registry.register(kind, path=path, sha256=sha, metrics=metrics, trigger="bench").version


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, None if body is None else json.dumps(body), headers)
    response = conn.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode(errors="replace")


def repo_home() -> Path:
    """``LSAT_HOME`` (default ``.lsat`` at the repository root): its cache holds SmolLM2."""
    home = Settings.from_env().home
    return home if home.is_absolute() else Path(__file__).parents[1] / home


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Phase:
    name: str
    clients: int
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    mixed: int = 0
    deviation: float = 0.0
    seen_versions: set[int] = field(default_factory=set)
    swaps: int = 0
    rss_mb: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def row(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s) or [float("nan")]
        ok = self.statuses.get(200, 0)
        return {
            "phase": self.name,
            "clients": self.clients,
            "seconds": round(self.elapsed_s, 1),
            "ok": ok,
            "rps": ok / self.elapsed_s if self.elapsed_s else 0.0,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "503": self.statuses.get(503, 0),
            "errors": len(self.errors),
            "mixed": self.mixed,
            "deviation": self.deviation,
            "swaps": self.swaps,
            "versions": sorted(self.seen_versions),
            "rss_start_mb": self.rss_mb[0],
            "rss_mid_mb": self.rss_mb[len(self.rss_mb) // 2],
            "rss_end_mb": self.rss_mb[-1],
            "rss_max_mb": max(self.rss_mb),
            "rss_first_half_max_mb": max(self.rss_mb[: max(1, len(self.rss_mb) // 2)]),
            "rss_second_half_max_mb": max(self.rss_mb[len(self.rss_mb) // 2 :]),
        }


class Load:
    """Clients, reference scores, RSS sampler and swapper against one running scorer."""

    def __init__(self, port: int, pid: int, payloads: list[dict[str, Any]]) -> None:
        self.port, self.pid, self.payloads = port, pid, payloads
        self.separation = 0.0
        self.reference: dict[int, list[list[dict[str, float]]]] = {}

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def promote(self, conn: http.client.HTTPConnection, version: int) -> None:
        if call(conn, "GET", "/adapters")[1].get("versions", {}).get("short") == version:
            return
        status, body = call(
            conn, "POST", "/admin/promote", {"kind": "short", "version": version}, TOKEN
        )
        if status != 200:
            raise RuntimeError(f"promote short v{version}: {status} {body}")
        deadline = time.monotonic() + 120
        while call(conn, "GET", "/adapters")[1].get("versions", {}).get("short") != version:
            if time.monotonic() > deadline:
                raise RuntimeError(f"short v{version} never served")
            time.sleep(0.05)

    def record_references(self) -> None:
        conn = self.conn()
        for version in ALPHAS:
            self.promote(conn, version)
            self.reference[version] = []
            for payload in self.payloads:
                status, body = call(conn, "POST", "/score", payload)
                assert status == 200, body
                self.reference[version].append(body["items"])
        self.separation = min(
            sum(abs(a["p_short"] - b["p_short"]) for a, b in zip(one, two, strict=True))
            for one, two in zip(self.reference[1], self.reference[2], strict=True)
        )
        assert self.separation > 0.01, "short versions score alike: mixing would not show"
        self.promote(conn, 1)
        conn.close()

    def check(self, index: int, body: dict[str, Any]) -> tuple[bool, float]:
        """(one version throughout, largest |Δp| from that version's reference).

        One version: the α is the named version's, every p_combined is α·p_long + (1−α)·p_short
        of the answer itself, and its p_short vector is nearer (L1) to the named version's
        reference than to the other's. The |Δp| is numeric noise (batch composition, bf16).
        """
        version = body["versions"].get("short")
        if version not in self.reference or abs(body["alpha"] - ALPHAS[version]) > 1e-9:
            return False, float("nan")
        alpha, items = body["alpha"], body["items"]
        for item in items:
            expected = alpha * item["p_long"] + (1 - alpha) * item["p_short"]
            if abs(item["p_combined"] - expected) > 1e-9:
                return False, float("nan")
        distance = {
            v: sum(abs(g["p_short"] - w["p_short"]) for g, w in zip(items, ref[index], strict=True))
            for v, ref in self.reference.items()
        }
        deviation = max(
            abs(g[key] - w[key])
            for g, w in zip(items, self.reference[version][index], strict=True)
            for key in ("p_long", "p_short")
        )
        return min(distance, key=distance.__getitem__) == version, deviation

    def client(self, phase: Phase, slot: int, stop: threading.Event, lock: threading.Lock) -> None:
        conn, n = self.conn(), slot
        while not stop.is_set():
            index = n % len(self.payloads)
            n += 1
            started = time.perf_counter()
            try:
                status, body = call(conn, "POST", "/score", self.payloads[index])
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    phase.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = self.conn()
                continue
            latency = time.perf_counter() - started
            with lock:
                phase.statuses[status] = phase.statuses.get(status, 0) + 1
                if status == 200:
                    phase.latencies_s.append(latency)
                    phase.seen_versions.add(body["versions"].get("short"))
                    one_version, deviation = self.check(index, body)
                    phase.mixed += not one_version
                    phase.deviation = max(phase.deviation, deviation)
                elif status != 503:
                    phase.errors.append(f"{status}: {str(body)[:200]}")
            if status == 503:
                time.sleep(0.05)
        conn.close()

    def run(self, name: str, clients: int, seconds: float, swap_every_s: float | None) -> Phase:
        phase, stop, lock = Phase(name, clients), threading.Event(), threading.Lock()
        phase.rss_mb.append(rss_mb(self.pid))
        threads = [
            threading.Thread(target=self.client, args=(phase, i, stop, lock), daemon=True)
            for i in range(clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        version, next_swap = 1, started + (swap_every_s or 0) / 2
        try:
            while (now := time.perf_counter()) - started < seconds:
                if swap_every_s and now >= next_swap:
                    version = 3 - version
                    self.swap(version)
                    phase.swaps += 1
                    next_swap += swap_every_s
                time.sleep(min(0.25, max(0.0, started + seconds - now)))
                phase.rss_mb.append(rss_mb(self.pid))
        finally:
            stop.set()
            for thread in threads:
                thread.join(180)
        phase.elapsed_s = time.perf_counter() - started
        phase.rss_mb.append(rss_mb(self.pid))
        if swap_every_s and version != 1:
            self.swap(1)
        return phase

    def swap(self, version: int) -> None:
        """Promote on a fresh connection (an idle kept-alive one is closed after 5 s)."""
        admin = self.conn()
        try:
            self.promote(admin, version)
        finally:
            admin.close()


def start_scorer(
    work: Path, args: argparse.Namespace, broker: EmbeddedBroker
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    home = repo_home() if args.smollm2 else work / "home"
    settings = Settings(
        home=Path(home).absolute(),
        database_url=f"sqlite:///{work / 'lsat.sqlite'}",
        base_model="smollm2" if args.smollm2 else "tiny-llama",
        admin_token=TOKEN,
        kafka=broker.kafka_settings,
    )
    command = [sys.executable, "-m", "lsat.apps.cli", "serve", "--port", str(port)]
    for flag in ("max_concurrency", "max_queue"):
        if getattr(args, flag) is not None:
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    log = (work / "serve.log").open("wb")
    env = {**os.environ, **to_env(settings)}
    if args.memory_trim_s is not None:
        env["LSAT_SCORER_MEMORY_TRIM_S"] = str(args.memory_trim_s)
    if args.bf16 is not None:
        env["LSAT_SCORER_BF16"] = args.bf16
    child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while True:
        if child.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"lsat serve did not get ready; see {work / 'serve.log'}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if call(conn, "GET", "/readyz")[0] == 200:
                conn.close()
                return child, port
        except OSError:
            pass
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s phases (under 2 minutes)")
    parser.add_argument("--smollm2", action="store_true", help="the real SmolLM2-135M")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per loaded phase")
    parser.add_argument("--swap-every", type=float, default=5.0)
    parser.add_argument("--items", type=int, default=None, help="items per request (20; SmolLM2 5)")
    parser.add_argument("--payloads", type=int, default=4)
    parser.add_argument("--max-concurrency", type=int)
    parser.add_argument("--max-queue", type=int)
    parser.add_argument(
        "--memory-trim-s",
        type=float,
        help="the scorer's LSAT_SCORER_MEMORY_TRIM_S (default: the setting's; 0: never trim; "
        "results then go to a file named ..._trim0)",
    )
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        help="the scorer's LSAT_SCORER_BF16 (default: the setting's, auto); results then go "
        "to a file named ..._bf16on / _bf16off",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration = min(args.duration, 10.0)
    args.items = args.items or (5 if args.smollm2 else 20)
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    store = SampleStore(f"sqlite:///{work / 'lsat.sqlite'}")
    for i in range(200):
        store.upsert_item(Item(str(i), f"Movie number {i} ({1980 + i % 20})"))
    store.close()
    base = (
        load_base_model("smollm2", cache_dir=repo_home() / "cache").model
        if args.smollm2
        else tiny_llama(0, hidden_size=128, num_layers=4).model
    )
    with open_registry(f"sqlite:///{work / 'lsat.sqlite'}") as registry:
        add_adapter(registry, base, "long", 0, work / "artifacts", None)
        for version, alpha in ALPHAS.items():
            add_adapter(registry, base, "short", version, work / "artifacts", alpha)
        registry.set_alias("serving-long", "long", 1, reason="bench", actor="bench")
        registry.set_alias("serving-short", "short", 1, reason="bench", actor="bench")
    del base
    payloads = [
        {
            "user_id": f"u{p}",
            "item_ids": [str((p * 37 + i) % 200) for i in range(args.items)],
            "history": [
                {"item_id": str((p * 11 + j) % 200), "label": (p + j) % 2} for j in range(10)
            ],
        }
        for p in range(args.payloads)
    ]
    with EmbeddedBroker(port=free_port(), log_path=work / "tansu.log") as broker:
        child, port = start_scorer(work, args, broker)
        try:
            load = Load(port, child.pid, payloads)
            load.record_references()
            load.run("warm-up", 2, 3.0, None)
            single = max(5.0, args.duration / 4)
            phases = [
                load.run("1 client", 1, single, None),
                load.run(f"{args.clients} clients", args.clients, args.duration, None),
                load.run(
                    f"{args.clients} clients, swap every {args.swap_every:g}s",
                    args.clients,
                    args.duration,
                    args.swap_every,
                ),
            ]
            conn = load.conn()
            metrics = call(conn, "GET", "/metrics")[1]
            conn.close()
        finally:
            child.terminate()
            child.wait(60)
    rows = [phase.row() for phase in phases]
    for phase in phases:
        for error in phase.errors[:5]:
            print(f"{phase.name}: {error}", file=sys.stderr)
    text = report(rows, args, metrics, load.separation)
    out = RESULTS / ("load_quick.md" if args.quick else "load.md")
    if args.smollm2:
        out = out.with_name(out.stem + "_smollm2.md")
    if args.bf16 is not None:
        out = out.with_name(f"{out.stem}_bf16{args.bf16}.md")
    if args.memory_trim_s is not None:
        out = out.with_name(f"{out.stem}_trim{args.memory_trim_s:g}.md")
    out.write_text(text)
    print(text)
    one, many, swapping = rows
    errors = sum(r["errors"] for r in rows)
    print(
        f"load rps={many['rps']:.1f} p99_ms={many['p99_ms']:.0f} swap_rps={swapping['rps']:.1f} "
        f"errors={errors} mixed={swapping['mixed'] + many['mixed']} "
        f"rss_growth_mb={swapping['rss_end_mb'] - one['rss_start_mb']:.0f} "
        f"rss_stable={'yes' if rss_stable(rows) else 'no'}"
    )
    mixed = swapping["mixed"] + many["mixed"]
    return 0 if errors == 0 and mixed == 0 and rss_stable(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
