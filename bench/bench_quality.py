"""Quality on a fixed time-ordered ML-100K split: non-LLM baselines, the LLM per prompt, hybrids.

All samples in time order, each annotated with the collaborative counts of every interaction
before it (prequential, as the stream sees them). Train on the ``--train`` samples before a cut,
validate on the next ``--val``, test on the next ``--test``. Rows (issue 11): user, item and
history like-rate, the item-item co-like score, logistic rate stacks; SmolLM2 + LoRA (r 8, q/v,
top ``--layers`` layers, bf16 autocast when the CPU has avx512_bf16/AMX or on CUDA) with each
prompt format; hybrids fitted on the validation samples' out-of-sample predictions. Test AUC ±
standard error overall, on warm and on cold items, and seconds, in bench/results/quality.md and
quality.png. Each LLM variant's scores are cached as soon as it finishes, and the results are
rewritten after every variant, so a long run is never lost and a rerun resumes.

    python bench/bench_quality.py [--train 2000 --val 300 --test 600 --cut 30000]
    python bench/bench_quality.py --quick        # tiny sizes and the tiny random Llama
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from bench_data import ROOT, cache_dir, ml100k_folder
from quality_report import (
    COLD_MAX_RATINGS,
    LlmScores,
    Row,
    baseline_rows,
    cut_sensitivity,
    hybrid_rows,
    make_split,
    plot_rows,
    render_table,
    resolve_cut,
)
from rich.console import Console
from safetensors.torch import load_file, save_file

from lsat.adapters.model.base_model import BaseLM, load_base_model, tiny_llama
from lsat.adapters.model.precision import native_bf16
from lsat.adapters.model.prompts import PROMPT_FORMATS
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig, top_layers
from lsat.data.collaborative import build_annotated_samples
from lsat.data.loaders import load_dataset

console = Console(stderr=True)
QUICK = {"train": 160, "val": 80, "test": 160, "model": "tiny", "layers": 2}


def has_bf16(device: str) -> bool:
    """bf16 autocast pays where the device computes bf16 natively (CUDA, avx512_bf16/AMX CPUs)."""
    return native_bf16(device)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="ML-100K folder")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument(
        "--cut", type=float, default=30000, help="sample index (the probe's), or a fraction"
    )
    parser.add_argument("--prompts", nargs="+", choices=PROMPT_FORMATS, default=None)
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--layers", type=int, default=8, help="LoRA on the top N layers")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--patience", type=int, default=None, help="early stopping (epochs)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--sensitivity-cuts",
        type=int,
        nargs="*",
        default=[5000, 10000, 20000, 30000, 45000, 60000, 70000, 80000],
        help="also score the non-LLM rows at these cuts",
    )
    parser.add_argument("--no-llm", action="store_true", help="only the non-LLM rows")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, tiny random Llama")
    args = parser.parse_args(argv)
    if args.quick:
        defaults = parser.parse_args([])
        for key, value in QUICK.items():
            if getattr(args, key) == getattr(defaults, key):
                setattr(args, key, value)
    if args.prompts is None:
        args.prompts = ["tallrec", "tallrec_hints", "chat"]
    if args.out is None:
        quick = ROOT / "runs" / "bench_quality_quick" / "quality.md"
        args.out = quick if args.quick else ROOT / "bench" / "results" / "quality.md"
    return args


def load_base(args: argparse.Namespace) -> BaseLM:
    if args.model == "tiny":
        return tiny_llama(args.seed, hidden_size=128, num_layers=4)
    return load_base_model("smollm2", cache_dir=cache_dir())


def run_key(args: argparse.Namespace, prompt_format: str) -> str:
    """What decides an LLM variant's scores (the resume cache is keyed by it)."""
    fields = ["dataset", "train", "val", "test", "cut", "model", "layers", "epochs", "patience"]
    fields += ["lr", "batch_size", "seed"]
    blob = json.dumps({k: str(getattr(args, k)) for k in fields} | {"prompt": prompt_format})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


def llm_variant(args, base, titles, split, prompt_format: str, bf16: bool) -> LlmScores:
    """Train one adapter with ``prompt_format``; its validation and test P(like).

    Both steps are cached: the trained adapter (safetensors) as soon as training ends, the
    scores once scored, so a rerun after a crash neither retrains nor rescores.
    """
    folder = cache_dir() / "bench_quality"
    stem = f"{prompt_format}-{run_key(args, prompt_format)}"
    scores_file, adapter_file = folder / f"{stem}.json", folder / f"{stem}.safetensors"
    if scores_file.exists():
        data = json.loads(scores_file.read_text())
        console.log(f"{prompt_format}: scores resumed from {scores_file}")
        return LlmScores(np.array(data["val"]), np.array(data["test"]), data["seconds"])
    total = base.model.config.num_hidden_layers
    layers = top_layers(min(args.layers, total), total)
    config = TrainConfig(
        layers=layers,
        epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        bf16_autocast=bf16,
    )
    rec = LoraRecommender(
        base, titles, prompt_format=prompt_format, train_config=config, progress=True
    )
    folder.mkdir(parents=True, exist_ok=True)
    train_file = folder / f"{stem}.train.json"
    if adapter_file.exists() and train_file.exists():
        rec.set_lora_state(prompt_format, load_file(str(adapter_file)), config)
        train_seconds = json.loads(train_file.read_text())["train_seconds"]
        console.log(f"{prompt_format}: adapter resumed from {adapter_file}")
    else:
        started = time.perf_counter()
        # one epoch needs no validation pass; with more, validation AUC picks the epoch
        validation = split.val if args.epochs > 1 else []
        report = rec.train_adapter(prompt_format, split.train, validation, config=config)
        train_seconds = time.perf_counter() - started
        state = rec.lora_state(prompt_format)
        _atomic_write(adapter_file, lambda tmp: save_file(state, str(tmp)))
        train_file.write_text(json.dumps({"train_seconds": train_seconds, "steps": report.steps}))
        console.log(f"{prompt_format}: trained {report.steps} steps in {train_seconds:.0f} s")
    started = time.perf_counter()
    scores = rec.score(prompt_format, split.val + split.test)
    score_seconds = time.perf_counter() - started
    rec.delete_adapter(prompt_format)
    console.log(f"{prompt_format}: scored {len(scores)} in {score_seconds:.0f} s")
    n_val, seconds = len(split.val), train_seconds + score_seconds
    result = LlmScores(scores[:n_val], scores[n_val:], seconds)
    payload = {"val": result.val.tolist(), "test": result.test.tolist(), "seconds": seconds}
    payload |= {"train_seconds": train_seconds, "score_seconds": score_seconds}
    _atomic_write(scores_file, lambda tmp: tmp.write_text(json.dumps(payload)))
    return result


def write_results(args, split, rows, header: list[str], done: bool, sensitivity: list[str]) -> None:
    title = f"ML-100K, {len(split.train)} train / {len(split.val)} val / {len(split.test)} test"
    lines = [f"# Quality: {title}, time-ordered (bench/bench_quality.py)", ""]
    if not done:
        lines += ["**Partial results: the run is still going.**", ""]
    lines += [*header, "", *render_table(split, rows), ""]
    notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["Hybrid choices (the fallback keeps the rates when the LLM did not help):", ""]
        lines += [*notes, ""]
    if sensitivity:
        lines += [
            "The same non-LLM rows at other cuts (same sizes; test AUC): one 600-sample window "
            "holds few users, so the split moves every number by far more than its standard "
            "error.",
            "",
            *sensitivity,
            "",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    plot_rows(split, rows, args.out.with_suffix(".png"), title)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    dataset = load_dataset(args.dataset or ml100k_folder())
    samples = build_annotated_samples(dataset.interactions)
    annotate_s = time.perf_counter() - started
    cut = resolve_cut(args.cut, len(samples), args.train, args.val + args.test)
    split = make_split(samples, args.train, args.val, args.test, cut)
    titles = {k: v.title for k, v in dataset.items.items()}
    bf16 = has_bf16(args.device)
    first, last = split.train[0].timestamp, split.test[-1].timestamp
    header = [
        f"Samples {cut - args.train}..{cut + args.val + args.test - 1} of {len(samples)} "
        f"(cut at {cut}; unix time {first}..{last}). Every rate counts all "
        f"{len(dataset.interactions)} interactions strictly before its sample (annotation pass "
        f"{annotate_s:.1f} s for the whole dataset). Cold = target item with <= "
        f"{COLD_MAX_RATINGS} earlier ratings.",
        "",
        f"LLM: {args.model}, LoRA r 8 q/v on the top {args.layers} layers, lr {args.lr}, batch "
        f"{args.batch_size}, {args.epochs} epoch(s)"
        + (f", patience {args.patience}" if args.patience else "")
        + f", bf16 autocast {'on' if bf16 else 'off'}, {args.threads} threads, {args.device}, "
        f"{platform.machine()}. Hybrids are fitted on the {len(split.val)} validation samples "
        "(out-of-sample for the LLM); seconds of an LLM or hybrid row = training + scoring.",
        "",
        f"Run: `python bench/bench_quality.py --train {args.train} --val {args.val} "
        f"--test {args.test} --cut {args.cut:g} --prompts {' '.join(args.prompts)}"
        + (" --quick" if args.quick else "")
        + "`",
    ]
    rows, stack = baseline_rows(split)
    sensitivity = cut_sensitivity(samples, args.train, args.val, args.test, args.sensitivity_cuts)
    write_results(args, split, rows, header, args.no_llm, sensitivity)
    console.log(f"baselines written to {args.out}")
    if args.no_llm:
        return 0
    base = load_base(args)
    llm: dict[str, LlmScores] = {}
    for prompt_format in args.prompts:
        llm[prompt_format] = llm_variant(args, base, titles, split, prompt_format, bf16)
        llm_rows = [Row(f"LLM: {name}", "llm", s.test, s.seconds) for name, s in llm.items()]
        every = rows + llm_rows + hybrid_rows(split, llm, stack)
        write_results(args, split, every, header, len(llm) == len(args.prompts), sensitivity)
        console.log(f"{prompt_format} done; results so far in {args.out}")
    print("\n".join(render_table(split, every)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
