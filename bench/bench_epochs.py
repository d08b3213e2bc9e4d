"""Test AUC after each epoch of LoRA training on SmolLM2-135M, per layer configuration.

Answers "what does it take to beat the like-rate baselines" on one fixed ML-100K split (the
split of bench_model.py): the same training samples seen 1, 2, 3 … times, with the test AUC
measured after every epoch (each epoch's number is reported; none is selected), next to the
no-LLM baselines on the same test samples. Writes bench/results/epochs.md and epochs.png.

    python bench/bench_epochs.py [--train 1200 --test 400 --epochs 3 --configs top4 top8 all]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from bench_data import ROOT, cache_dir, fixed_split

from lsat.adapters.experiment.baselines import HistoryLikeRate, LikeRateSum
from lsat.adapters.model.base_model import load_base_model
from lsat.adapters.model.recommender import LoraRecommender
from lsat.adapters.model.training import TrainConfig, top_layers
from lsat.core.evaluation import auc, auc_standard_error

CONFIGS = {
    "top4": ("top 4 layers + cache + bf16", 4),
    "top8": ("top 8 layers + cache + bf16", 8),
    "all": ("all 30 layers + bf16", None),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "epochs.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_base_model("smollm2", cache_dir=cache_dir())
    titles, train, test = fixed_split(args.train, args.test)
    labels = [s.label for s in test]
    positives = sum(labels)

    def cell(value: float) -> str:
        return f"{value:.3f} ± {auc_standard_error(value, positives, len(labels) - positives):.3f}"

    curves: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for key in args.configs:
        label, top = CONFIGS[key]
        layers = None if top is None else top_layers(top, base.model.config.num_hidden_layers)
        config = TrainConfig(
            layers=layers, epochs=args.epochs, batch_size=8, lr=1e-3, seed=0, bf16_autocast=True
        )
        rec = LoraRecommender(base, titles, train_config=config, progress=True)
        started = time.perf_counter()
        # the test set is passed as "validation" only to be scored after each epoch; with
        # patience=None nothing stops early, and every epoch's AUC is reported
        report = rec.train_adapter("epochs", train, test, config=config)
        seconds[key] = time.perf_counter() - started
        curves[key] = [value for _, value in report.val_history]
        print(f"{label}: {[round(v, 3) for v in curves[key]]} in {seconds[key]:.0f} s", flush=True)
        rec.delete_adapter("epochs")

    references = {
        "base model, no adapter": auc(
            labels, LoraRecommender(base, titles, progress=False).score(None, test)
        ),
        "history like-rate": auc(labels, HistoryLikeRate().fit(train).predict_many(test)),
        "user + item like-rate": auc(labels, LikeRateSum().fit(train).predict_many(test)),
    }
    lines = [
        f"# Test AUC per epoch (SmolLM2-135M, {args.threads} threads)",
        "",
        f"{len(train)} ML-100K training samples, {len(test)} later test samples (the split of "
        "bench_model.py), LoRA r=8 on q,v, lr 1e-3, batch 8, bf16 autocast, seed 0. Test AUC ± "
        "standard error after each epoch; no epoch is selected.",
        "",
        "| configuration | " + " | ".join(f"epoch {e + 1}" for e in range(args.epochs)) + " | s |",
        "|---|" + "---|" * (args.epochs + 1),
    ]
    for key, values in curves.items():
        cells = " | ".join(cell(v) for v in values)
        lines.append(f"| {CONFIGS[key][0]} | {cells} | {seconds[key]:.0f} |")
    lines += ["", "On the same test samples:", ""]
    lines += [f"- {name}: {cell(value)}" for name, value in references.items()]
    lines += [
        "",
        f"Run: `python bench/bench_epochs.py --train {args.train} --test {args.test} "
        f"--epochs {args.epochs} --configs {' '.join(args.configs)}`",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(curves, references, args.out.with_suffix(".png"))
    return 0


def plot(curves: dict[str, list[float]], references: dict[str, float], path: Path) -> None:
    """AUC per epoch per configuration, the references as dashed lines."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=CONFIGS[key][0])
    for (name, value), style in zip(references.items(), (":", "--", "-."), strict=False):
        ax.axhline(value, color="grey", linestyle=style, label=f"{name} ({value:.3f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test AUC")
    ax.set_xticks(range(1, max(len(v) for v in curves.values()) + 1))
    ax.set_title("SmolLM2-135M + LoRA on ML-100K: test AUC per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
