# ruff: noqa: E501
"""Benchmark ``/recommend`` of 100 candidates over real HTTP on SmolLM2-135M.

The real scorer (``Scorer``: the ASGI server, admission, micro-batching ``ScoringService``)
serves a long and a short adapter in the trainer's default shape (LoRA r=8 on q,v of the top
layers) from a SQLite registry, with user history from a real stream store holding ML-100K.
Measured side by side in one run:

* ours: ``POST /recommend`` with 100 candidates (shared-prefix ranking, both adapters in one
  pass, bf16 where native), p50 / p99 over several users; also without candidates (the store
  picks 100) and ``POST /score`` of one item; then each user's next ``/score`` and
  ``/recommend``, which find the user's prompt prefix in the scorer's prefix cache;
* naive peft on the same requests: each prompt in full, two padded passes with ``set_adapter``,
  full-vocabulary logits, fp32 (in-process, no HTTP: the naive side gets no HTTP cost);
* the FLOP bound: the matmul FLOPs our computation needs at this machine's measured matmul rate
  (``flops.py``), and the naive computation's FLOPs at the fp32 rate;
* concurrent ``/score`` clients: requests/s and forward passes per request (micro-batching).

Run: ``python bench/bench_recommend.py [--quick]``; writes ``bench/results/recommend.md``.
Last line: ``recommend100 p50_ms=… p99_ms=… vs_naive=…x``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from bench_data import ROOT, cache_dir, ml100k_folder
from flops import flop_bounds
from peft import get_peft_model
from peft.utils import get_peft_model_state_dict

from lsat.adapters.lifecycle.artifacts import save_adapter, sha256_file
from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.model.base_model import load_base_model
from lsat.adapters.model.forward import answer_token_ids
from lsat.adapters.model.prefix_ranking import split_shared_prefix
from lsat.adapters.model.prompts import build_prompt
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig, top_layers
from lsat.adapters.serving import Scorer, StoreHistory
from lsat.core.settings import Settings
from lsat.data.loaders import load_dataset
from lsat.data.types import HISTORY_LENGTH, Sample
from lsat.stream.store import SampleStore
from lsat.stream.store.records import IngestItem

RESULTS = ROOT / "bench" / "results" / "recommend.md"
CANDIDATES = 100


class Client:
    """A keep-alive HTTP/1.1 JSON client for one scorer (reconnects when the server closed an
    idle connection)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.connection = http.client.HTTPConnection(*self.address, timeout=300)

    def post(self, path: str, body: dict) -> tuple[float, int, dict]:
        """(seconds, status, JSON answer)."""
        payload = json.dumps(body)
        headers = {"Content-Type": "application/json"}
        for attempt in range(2):
            started = time.perf_counter()
            try:
                self.connection.request("POST", path, payload, headers)
                response = self.connection.getresponse()
                answer = json.loads(response.read())
                return time.perf_counter() - started, response.status, answer
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()
                self.connection = http.client.HTTPConnection(*self.address, timeout=300)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def random_adapter(base, seed: int, folder: Path, kind: str, layers) -> Path:
    """A LoRA in the trainer's default shape with random (non-zero) weights, saved as an artifact."""
    config = TrainConfig(layers=layers).lora_config()
    config.init_lora_weights = False
    torch.manual_seed(seed)
    peft_model = get_peft_model(base.model, config, adapter_name="tmp")
    state = {
        k: v.detach().clone() * 0.1
        for k, v in get_peft_model_state_dict(peft_model, adapter_name="tmp").items()
    }
    peft_model.unload()
    return save_adapter(
        folder / f"{kind}-{seed}", state, config, {"base_model": "smollm2", "kind": kind}
    )


def fill_store(url: str, dataset, last: int) -> None:
    """The last ``last`` ML-100K interactions and the catalogue into a fresh stream store."""
    store = SampleStore(url)
    events = dataset.interactions[-last:]
    for i in range(0, len(events), 5000):
        store.ingest_many([IngestItem(e) for e in events[i : i + 5000]])
    with store.transaction() as tx:
        for item in dataset.items.values():
            tx.upsert_item(item)
    store.close()


def naive_recommend(recommender, names, samples, alpha, batch_size=16) -> tuple[np.ndarray, float]:
    """Every prompt in full, two padded passes with set_adapter, full-vocab logits, fp32."""
    tokenizer = recommender.base.tokenizer
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    yes, no = answer_token_ids(tokenizer)
    prompts = [build_prompt(s, recommender.titles) for s in samples]
    model = recommender.model
    out = []
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            enc = tokenizer(prompts[i : i + batch_size], return_tensors="pt", padding=True)
            probs = []
            for name in names:
                model.set_adapter(name)
                logits = model(**enc).logits[:, -1, [yes, no]]
                probs.append(torch.softmax(logits.float(), -1)[:, 0])
            out.append(alpha * probs[0] + (1 - alpha) * probs[1])
    return torch.cat(out).numpy(), time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (under 2 minutes)")
    parser.add_argument("--requests", type=int, help="timed /recommend requests (default 30)")
    parser.add_argument("--naive", type=int, help="naive requests timed (default 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", default=str(Settings().trainer.layers or "all"))
    args = parser.parse_args()
    requests = args.requests or (8 if args.quick else 30)
    naive_runs = args.naive or (1 if args.quick else 2)
    # the naive cost is linear in the candidates (independent batches of 16): --quick times
    # the first 32 of the 100 and scales the time by 100/32
    naive_candidates = 32 if args.quick else CANDIDATES
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started_all = time.perf_counter()

    base = load_base_model("smollm2", cache_dir=cache_dir())
    total_layers = base.model.config.num_hidden_layers
    layers = None if args.layers == "all" else top_layers(int(args.layers), total_layers)
    dataset = load_dataset(ml100k_folder())
    titles = {k: v.title for k, v in dataset.items.items()}
    work = Path(tempfile.mkdtemp(prefix="bench-recommend-"))
    store_url = f"sqlite:///{work / 'store.sqlite'}"
    fill_store(store_url, dataset, 20000 if args.quick else len(dataset.interactions))
    registry = open_registry(f"sqlite:///{work / 'registry.sqlite'}")
    for seed, kind in enumerate(("long", "short")):
        path = random_adapter(base, seed, work / "artifacts", kind, layers)
        registry.register(kind, path=path, sha256=sha256_file(path / "adapter_model.safetensors"))
        registry.set_alias(f"serving-{kind}", kind, 1, reason="bench", actor="bench")

    history = StoreHistory(store_url)
    # as `lsat serve` builds it: with the default prefix cache
    cache_mb = Settings().scorer.prefix_cache_mb
    recommender = LoraRecommender(
        base, dict(titles), prefix_cache_bytes=cache_mb << 20, progress=False
    )
    prefix_cache = recommender.prefix_cache
    assert prefix_cache is not None, "the bench measures the scorer's default prefix cache"
    rng = np.random.default_rng(0)
    per_user: dict[str, list[str]] = {}
    for event in dataset.interactions[-20000:]:
        per_user.setdefault(event.user_id, []).append(event.item_id)
    users = [u for u, items in per_user.items() if len(items) >= HISTORY_LENGTH]
    users = [str(u) for u in rng.permutation(users)[: requests + 4]]
    all_items = sorted(titles)

    def candidates_for(user: str) -> list[str]:
        seen = set(per_user[user])
        unseen = [i for i in all_items if i not in seen]
        return [str(i) for i in rng.choice(unseen, CANDIDATES, replace=False)]

    bodies = [{"user_id": u, "candidates": candidates_for(u), "k": 10} for u in users]
    # as `lsat serve` runs it: the model on the main thread (model_thread=False; torch's OpenMP
    # ops are slower from other threads), the clients on threads of their own
    with Scorer(
        recommender,
        registry,
        Settings(),
        history_source=history,
        port=0,
        consume=False,
        model_thread=False,
    ) as scorer:

        def drive() -> dict:
            client = Client(scorer.url)
            service = scorer.service
            for body in bodies[:2]:  # warm-up (weights cast to bf16 once, allocator)
                seconds, status, answer = client.post("/recommend", body)
                assert status == 200, answer
            latencies = []
            cpu_started = time.process_time()
            for body in bodies[2 : 2 + requests]:
                seconds, status, answer = client.post("/recommend", body)
                assert status == 200, answer
                latencies.append(seconds)
            cpu_per_request = (time.process_time() - cpu_started) / requests

            def forget_prefixes() -> None:
                with scorer.model_lock:
                    prefix_cache.clear()

            store_latencies, store_refusal = [], None
            for body in bodies[2 : 2 + max(3, requests // 4)]:
                forget_prefixes()  # a user not seen lately
                seconds, status, answer = client.post(
                    "/recommend", {"user_id": body["user_id"], "k": 10}
                )
                if status == 200:
                    store_latencies.append(seconds)
                else:
                    store_refusal = f"{status}: {answer}"
            # per user: /score with nothing cached (cold), then the user's next /score and next
            # /recommend (new candidates), which find the user's prefix in the cache (warm)
            score_latencies, warm_score_latencies, warm_latencies = [], [], []
            hits_before = prefix_cache.hits
            for body in bodies[2 : 2 + requests]:
                user, first, second = body["user_id"], body["candidates"][0], body["candidates"][1]
                forget_prefixes()
                seconds, status, answer = client.post("/score", {"user_id": user, "item_id": first})
                assert status == 200, answer
                score_latencies.append(seconds)
                seconds, status, answer = client.post(
                    "/score", {"user_id": user, "item_id": second}
                )
                assert status == 200, answer
                warm_score_latencies.append(seconds)
                fresh = {"user_id": user, "candidates": candidates_for(user), "k": 10}
                seconds, status, answer = client.post("/recommend", fresh)
                assert status == 200, answer
                warm_latencies.append(seconds)
            warm_hits = prefix_cache.hits - hits_before
            entry_mb = prefix_cache.bytes / max(len(prefix_cache), 1) / 2**20

            # concurrent single-item /score clients: do they share forward passes?
            clients, per_client = 8, (3 if args.quick else 6)
            batches_before, jobs_before = service.batcher.batches, service.batcher.jobs
            errors: list[str] = []

            def hammer(index: int) -> None:
                own = Client(scorer.url)
                for j in range(per_client):
                    body = bodies[(index + j) % len(bodies)]
                    _, status, answer = own.post(
                        "/score", {"user_id": body["user_id"], "item_id": body["candidates"][j]}
                    )
                    if status != 200:
                        errors.append(f"{status} {answer}")

            threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
            concurrent_started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            concurrent_s = time.perf_counter() - concurrent_started
            passes = service.batcher.batches - batches_before
            jobs = service.batcher.jobs - jobs_before
            bf16 = service.bf16
            served = scorer.state.current
            names = [served.names["long"], served.names["short"]]
            alpha = served.alpha
            # our answers for the naive comparison (the naive path runs after, on this thread)
            ours_for_naive = [
                client.post(
                    "/score",
                    {"user_id": body["user_id"], "item_ids": body["candidates"][:naive_candidates]},
                )[2]
                for body in bodies[2 : 2 + naive_runs]
            ]
            return dict(locals())

        outcome: dict = {}

        def drive_then_stop() -> None:
            try:
                outcome.update(drive())
            finally:
                scorer.stop()

        driver = threading.Thread(target=drive_then_stop, name="bench-clients")
        driver.start()
        scorer.serve_model()
        driver.join()
        if "ours_for_naive" not in outcome:
            raise SystemExit("the benchmark's clients failed (see the traceback above)")
        (
            ours_for_naive,
            names,
            alpha,
            bf16,
            latencies,
            score_latencies,
            warm_latencies,
            warm_score_latencies,
            store_latencies,
            cpu_per_request,
            warm_hits,
            entry_mb,
            clients,
            per_client,
            jobs,
            concurrent_s,
            passes,
            errors,
            store_refusal,
        ) = (
            outcome[name]
            for name in [
                "ours_for_naive",
                "names",
                "alpha",
                "bf16",
                "latencies",
                "score_latencies",
                "warm_latencies",
                "warm_score_latencies",
                "store_latencies",
                "cpu_per_request",
                "warm_hits",
                "entry_mb",
                "clients",
                "per_client",
                "jobs",
                "concurrent_s",
                "passes",
                "errors",
                "store_refusal",
            ]
        )

        # naive peft on the same requests (in process), and the same requests through our path
        naive_s, agreement = [], []
        for body, ours in zip(bodies[2 : 2 + naive_runs], ours_for_naive, strict=True):
            pairs = history.history(body["user_id"], HISTORY_LENGTH)
            samples = [
                Sample(
                    f"n{i}",
                    body["user_id"],
                    item,
                    0,
                    0,
                    tuple(p for p, _ in pairs),
                    tuple(lab for _, lab in pairs),
                )
                for i, item in enumerate(body["candidates"])
            ]
            all_samples, samples = samples, samples[:naive_candidates]
            naive, seconds = naive_recommend(recommender, names, samples, alpha)
            naive_s.append(seconds * CANDIDATES / len(samples))
            ours_p = np.array([e["p_combined"] for e in ours["items"]])
            agreement.append(float(np.abs(ours_p - naive).max()))
        prompts = [build_prompt(s, recommender.titles) for s in all_samples]
        token_ids = recommender.base.tokenizer(prompts, add_special_tokens=False)["input_ids"]

    registry.close()
    fp32_rate, bf16_rate = flop_bounds()
    # matmul FLOPs: 2 × (non-embedding params per layer) per token and layer
    params = sum(
        p.numel() for n, p in base.model.named_parameters() if "layers." in n and "lora" not in n
    )
    per_layer = params / total_layers
    start = layers[0] if layers else 0
    group = split_shared_prefix(token_ids)
    prefix_tokens = len(group.prefix)
    suffix_tokens = sum(map(len, group.suffixes))
    layer_passes = start + 2 * (total_layers - start)
    ours_flops = 2 * per_layer * layer_passes * (prefix_tokens + suffix_tokens)
    full_tokens = sum(map(len, token_ids))
    naive_flops = 2 * 2 * per_layer * total_layers * full_tokens
    ours_rate = bf16_rate if bf16 else fp32_rate
    bound_ms = ours_flops / (ours_rate * 1e9) * 1000
    warm_flops = 2 * per_layer * layer_passes * suffix_tokens
    warm_bound_ms = warm_flops / (ours_rate * 1e9) * 1000
    naive_bound_ms = naive_flops / (fp32_rate * 1e9) * 1000

    p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 99) * 1000
    naive_ms = statistics.median(naive_s) * 1000
    naive_note = (
        ""
        if naive_candidates == CANDIDATES
        else f"; timed on {naive_candidates} candidates, scaled ×{CANDIDATES / naive_candidates:.3g}"
    )
    vs_naive = naive_ms / p50
    score_p50 = statistics.median(score_latencies) * 1000
    warm_p50 = statistics.median(warm_latencies) * 1000
    warm_score_p50 = statistics.median(warm_score_latencies) * 1000
    store_p50 = statistics.median(store_latencies) * 1000 if store_latencies else float("nan")
    load_after = os.getloadavg()
    wall = time.perf_counter() - started_all
    mode = "--quick" if args.quick else ""
    report = f"""# /recommend of {CANDIDATES} candidates over HTTP (SmolLM2-135M, CPU, {args.threads} threads)

Produced by `python bench/bench_recommend.py {mode}` in one run ({wall:.0f} s). Adapters: long +
short, LoRA r=8 on q,v of {"all layers" if layers is None else f"the top {len(layers)} of {total_layers} layers"}
(the trainer's default shape), random weights; scorer precision: {"bf16 (native on this CPU)" if bf16 else "fp32"}.
Users and their history from a stream store (SQLite) holding ML-100K; {CANDIDATES} random
unseen candidates per user; a prompt here is {prefix_tokens} shared prefix tokens + {suffix_tokens / CANDIDATES:.1f}
suffix tokens per candidate on average ({full_tokens} tokens for all {CANDIDATES} prompts in full).
Machine load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f};
`OMP_WAIT_POLICY` {os.environ.get("OMP_WAIT_POLICY") or "unset (OpenMP threads spin while waiting)"}.

| path | p50 | p99 | vs naive |
|---|---|---|---|
| ours: `POST /recommend`, {CANDIDATES} candidates given ({len(latencies)} users) | {p50:.0f} ms | {p99:.0f} ms | **{vs_naive:.1f}×** |
| ours: CPU time per `/recommend` above (every thread of the process: server, model, client) | {cpu_per_request * 1000:.0f} ms | – | – |
| ours: `POST /recommend` without candidates (store picks {CANDIDATES}; {len(store_latencies)} users) | {store_p50:.0f} ms | – | {naive_ms / store_p50:.1f}× |
| ours: `POST /score`, one item, user's prefix not cached ({len(score_latencies)} users) | {score_p50:.0f} ms | {percentile(score_latencies, 99) * 1000:.0f} ms | – |
| ours, the user's next requests (prefix cached): `POST /score`, one item | {warm_score_p50:.0f} ms | {percentile(warm_score_latencies, 99) * 1000:.0f} ms | – |
| ours, the user's next requests (prefix cached): `POST /recommend`, {CANDIDATES} new candidates | {warm_p50:.0f} ms | {percentile(warm_latencies, 99) * 1000:.0f} ms | {naive_ms / warm_p50:.1f}× |
| naive peft: 2 padded passes with `set_adapter`, full-vocab head, fp32, batches of 16 ({len(naive_s)} users, in process{naive_note}) | {naive_ms:.0f} ms | – | 1.0× |
| FLOP bound of our computation ({ours_flops / 1e9:.0f} GFLOP at the {"bf16" if bf16 else "fp32"} matmul rate {ours_rate:.0f} GFLOP/s) | {bound_ms:.0f} ms | – | ours at {bound_ms / p50:.2f} of it |
| FLOP bound of our computation with the prefix cached ({warm_flops / 1e9:.0f} GFLOP) | {warm_bound_ms:.0f} ms | – | ours at {warm_bound_ms / warm_p50:.2f} of it |
| FLOP bound of the naive computation ({naive_flops / 1e9:.0f} GFLOP at the fp32 rate {fp32_rate:.0f} GFLOP/s) | {naive_bound_ms:.0f} ms | – | – |

Prefix cache (`LSAT_SCORER_PREFIX_CACHE_MB={cache_mb}`, as `lsat serve` runs by default): the
user's next requests above hit it {warm_hits} times out of {2 * len(warm_latencies)}; one user's entry holds
{entry_mb:.1f} MB ({"bf16" if bf16 else "fp32"}), so {cache_mb} MB keep ~{cache_mb / max(entry_mb, 1e-9):.0f} users. The "not cached" rows
clear it first. The first `/recommend` of a user (top row) runs the prefix; nothing is cached across users.

Max |P_combined(ours) − P_combined(naive)| over the naive users' candidates: {max(agreement):.4f}
({"bf16 vs fp32" if bf16 else "both fp32"}).

{clients} concurrent clients sending single-item `/score` requests ({per_client} each): {jobs / concurrent_s:.1f} requests/s,
{jobs} requests in {passes} forward passes ({jobs / max(passes, 1):.1f} requests per pass), errors: {len(errors)}.

On a busy machine read the ratios (vs naive, vs the bound: measured in this run under the same
load) and the CPU time per request, which depends much less on other processes than wall time.

FLOP bounds count matmul FLOPs only (2 × {per_layer / 1e6:.2f} M params per layer per token):
ours = (prefix + suffix tokens) × ({start} shared layers + 2 adapters × {total_layers - start} adapted layers);
naive = 2 adapters × {total_layers} layers × every prompt token. Matmul rates are the best of three
2048² products measured in this run (`bench/flops.py`).
"""
    if store_refusal is not None:
        report += (
            f"\n`/recommend` without candidates was refused by the HTTP layer: {store_refusal}\n"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    print(
        f"score1 cold_p50_ms={score_p50:.0f} warm_p50_ms={warm_score_p50:.0f}; "
        f"recommend100 warm_p50_ms={warm_p50:.0f}"
    )
    print(f"recommend100 p50_ms={p50:.0f} p99_ms={p99:.0f} vs_naive={vs_naive:.1f}x")


if __name__ == "__main__":
    main()
