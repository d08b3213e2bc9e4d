"""Benchmark the model core on SmolLM2-135M: scoring and LoRA training throughput and AUC.

Compares ours against a naive baseline (plain peft, all layers, fp32, every prompt padded to the
longest, full-vocabulary head) and the machine's matmul FLOP bound measured in the same run,
then ablates each speed-up on a fixed ML-100K split (train on a random sample of the earlier
interactions, test on the next ones in time) with each variant's test AUC ± its standard error,
so the effect of every speed-up on quality is visible next to its effect on speed. The like-rate
baselines on the same test samples give context. Writes bench/results/model.md.

    python bench/bench_model.py [--train 1200 --test 400 --threads 2 --epochs 1]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from bench_data import ROOT, cache_dir, fixed_split
from flops import flop_bounds
from peft import get_peft_model
from tqdm import tqdm

from lsat.adapters.experiment.baselines import HistoryLikeRate, LikeRateSum
from lsat.adapters.model.base_model import load_base_model
from lsat.adapters.model.batching import right_pad
from lsat.adapters.model.forward import answer_token_ids
from lsat.adapters.model.prompts import build_prompt
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.scoring import EncodedPrompts, score_prompts
from lsat.adapters.model.training import TrainConfig, top_layers
from lsat.core.evaluation import auc, auc_standard_error


def naive_scores(base, prompts: list[str], batch_size: int) -> tuple[np.ndarray, float]:
    """Plain HF forward: all prompts padded to the longest, full-vocab logits, fp32."""
    tok = base.tokenizer
    yes, no = answer_token_ids(tok)
    ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
    width = max(map(len, ids))
    out = []
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            chunk = ids[i : i + batch_size]
            padded, mask = right_pad([*chunk, [0] * width], 0)
            padded, mask = padded[:-1], mask[:-1]
            logits = base.model(input_ids=padded, attention_mask=mask).logits
            last = logits[torch.arange(len(chunk)), mask.sum(1) - 1][:, [yes, no]]
            out.append(torch.softmax(last, -1)[:, 0].numpy())
    return np.concatenate(out), time.perf_counter() - started


def auc_cell(labels: list[int], scores) -> str:
    """``AUC ± standard error`` for a table cell."""
    value = auc(labels, scores)
    positives = sum(labels)
    return f"{value:.3f} ± {auc_standard_error(value, positives, len(labels) - positives):.3f}"


def naive_train(
    base, prompts, labels, config: TrainConfig, test_prompts: list[str]
) -> tuple[float, np.ndarray]:
    """Plain peft training (all layers, fp32, padded to the longest, full head).

    Returns the training seconds (all epochs) and the trained model's naive test scores.
    """
    torch.manual_seed(config.seed)
    model = get_peft_model(base.model, config.lora_config(), adapter_name="naive")
    tok = base.tokenizer
    yes, no = answer_token_ids(tok)
    ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
    width = max(map(len, ids))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    model.train()
    started = time.perf_counter()
    steps = [i for _ in range(config.epochs) for i in range(0, len(ids), config.batch_size)]
    for i in tqdm(steps, desc="naive training", unit="batch"):
        chunk = ids[i : i + config.batch_size]
        padded, mask = right_pad([*chunk, [0] * width], 0)
        padded, mask = padded[:-1], mask[:-1]
        logits = model(input_ids=padded, attention_mask=mask).logits
        last = logits[torch.arange(len(chunk)), mask.sum(1) - 1][:, [yes, no]]
        target = torch.tensor([0 if y else 1 for y in labels[i : i + config.batch_size]])
        loss = F.cross_entropy(last, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    scores, _ = naive_scores(_Wrapped(base, model), test_prompts, 16)
    base.model = model.unload()
    return seconds, scores


class _Wrapped:
    """``base`` with its model swapped for ``model`` (what ``naive_scores`` reads)."""

    def __init__(self, base, model) -> None:
        self.tokenizer, self.model = base.tokenizer, model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=4, help="LoRA on the top N layers")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "model.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_base_model("smollm2", cache_dir=cache_dir())
    titles, train, test = fixed_split(args.train, args.test)
    test_labels = [s.label for s in test]
    lines = [f"# Model core benchmark (SmolLM2-135M, {args.threads} threads)", ""]

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    fp32, bf16 = flop_bounds()
    say(f"matmul 2048² bound: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s")
    say("")
    prompts = [build_prompt(s, titles) for s in test]
    encoded = EncodedPrompts(base.tokenizer, prompts)
    tokens = sum(encoded.lengths)
    flops_per_token = 2 * sum(p.numel() for n, p in base.model.named_parameters() if "layers." in n)
    say(f"## Scoring {len(test)} test prompts ({tokens} tokens, mean {tokens / len(test):.0f})")
    say(
        "| variant | samples/s | tokens/s | vs naive | % of fp32 bound | % of bf16 bound "
        "| base-model AUC | max abs Δp vs naive |"
    )
    say("|---|---|---|---|---|---|---|---|")
    naive_p, naive_s = naive_scores(base, prompts, 16)
    rows = [("naive (padded to longest, full head, fp32)", naive_s, naive_p)]
    for label, kw in [
        ("bucketed + 2-row head, fp32", {"bf16": False}),
        ("bucketed + 2-row head, bf16 autocast", {"bf16": True}),
    ]:
        started = time.perf_counter()
        ours = score_prompts(base.model, encoded, batch_size=16, **kw)
        rows.append((label, time.perf_counter() - started, ours))
        if not kw["bf16"]:
            assert np.abs(ours - naive_p).max() < 1e-4, "fp32 scores differ from the naive forward"
    for label, seconds, scores in rows:
        gflops = tokens * flops_per_token / seconds / 1e9
        say(
            f"| {label} | {len(test) / seconds:.1f} | {tokens / seconds:.0f} | "
            f"{naive_s / seconds:.2f}x | {100 * gflops / fp32:.0f}% | {100 * gflops / bf16:.0f}% "
            f"| {auc_cell(test_labels, scores)} | {np.abs(scores - naive_p).max():.4f} |"
        )
    say("")
    train_prompts = [build_prompt(s, titles) for s in train]
    train_labels = [s.label for s in train]
    config = TrainConfig(batch_size=8, epochs=args.epochs, lr=1e-3, seed=0)
    seen = len(train) * args.epochs
    say(
        f"## Training ablation: {len(train)} ML-100K train samples, {args.epochs} epoch(s), "
        f"test AUC ± standard error on {len(test)}"
    )
    say("| variant | train samples/s | vs naive | test AUC | train s |")
    say("|---|---|---|---|---|")
    naive_seconds, naive_trained = naive_train(base, train_prompts, train_labels, config, prompts)
    say(
        f"| naive plain peft, all layers, fp32, padded, full head | "
        f"{seen / naive_seconds:.2f} | 1.00x | {auc_cell(test_labels, naive_trained)} "
        f"| {naive_seconds:.0f} |"
    )
    top = top_layers(args.top, base.model.config.num_hidden_layers)
    variants = [
        ("ours all layers, fp32 (bucketing + 2-row head)", config),
        ("+ bf16 autocast", replace(config, bf16_autocast=True)),
        (f"top {args.top} layers + lower-layer cache, fp32", replace(config, layers=top)),
        (
            f"top {args.top} layers, no cache (truncated backprop only)",
            replace(config, layers=top, cache_lower_layers=False),
        ),
        (f"top {args.top} layers + cache + bf16", replace(config, layers=top, bf16_autocast=True)),
    ]
    for label, cfg in variants:
        rec = LoraRecommender(base, titles, train_config=cfg, progress=True)
        report = rec.train_adapter("bench", train, [], config=cfg)
        cell = auc_cell(test_labels, rec.score("bench", test))
        say(
            f"| {label} | {seen / report.seconds:.2f} | "
            f"{naive_seconds / report.seconds:.2f}x | {cell} | {report.seconds:.0f} |"
        )
        rec.delete_adapter("bench")
    say("")
    say("Context on the same test samples (no LLM):")
    say("")
    say(f"- base model, no adapter: {auc_cell(test_labels, naive_p)}")
    for name, baseline in [
        ("like-rate of the sample's own history", HistoryLikeRate()),
        ("user + item like-rate sum (fitted on the train samples)", LikeRateSum()),
    ]:
        scores = baseline.fit(train).predict_many(test)
        say(f"- {name}: {auc_cell(test_labels, scores)}")
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
