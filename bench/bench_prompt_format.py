"""Zero-shot test AUC of SmolLM2-135M-Instruct: TALLRec's Alpaca wording vs its own chat template.

The system trains with TALLRec's Alpaca-style prompt (answer " Yes" / " No" after
"### Response:"). SmolLM2-Instruct was tuned on its chat template instead, where the assistant's
answer starts a new turn ("Yes" / "No", no leading space). Before any LoRA training, does the
base model rank the test samples better when asked in its own format? Same 400 test samples as
bench_model.py. Writes bench/results/prompt_format.md.

    python bench/bench_prompt_format.py [--test 400 --threads 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from bench_data import ROOT, cache_dir, fixed_split

from lsat.adapters.model.base_model import load_base_model
from lsat.adapters.model.batching import right_pad
from lsat.adapters.model.prompts import build_prompt
from lsat.core.evaluation import auc, auc_standard_error


def single_token(tokenizer, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise SystemExit(f"{text!r} is {len(ids)} tokens for this tokenizer")
    return int(ids[0])


def p_yes(model, tokenizer, prompts: list[str], yes: int, no: int, batch: int = 16) -> np.ndarray:
    """P(yes) / (P(yes) + P(no)) at the position after each prompt (fp32, no gradient)."""
    ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    out = []
    with torch.no_grad():
        for i in range(0, len(ids), batch):
            padded, mask = right_pad(ids[i : i + batch], 0)
            logits = model(input_ids=padded, attention_mask=mask).logits
            last = logits[torch.arange(len(padded)), mask.sum(1) - 1][:, [yes, no]]
            out.append(torch.softmax(last.float(), -1)[:, 0].numpy())
    return np.concatenate(out)


def chat_prompt(tokenizer, alpaca: str) -> str:
    """The same instruction and input as one user turn in the model's chat template."""
    body = alpaca.removeprefix("### Instruction:\n").removesuffix("### Response:")
    body = body.replace("### Input:\n", "")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": body.strip()}], tokenize=False, add_generation_prompt=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "prompt_format.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_base_model("smollm2", cache_dir=cache_dir())
    tokenizer, model = base.tokenizer, base.model.eval()
    titles, _, test = fixed_split(1200, args.test)
    labels = [s.label for s in test]
    positives = sum(labels)
    alpaca = [build_prompt(s, titles) for s in test]
    chat = [chat_prompt(tokenizer, p) for p in alpaca]
    rows = []
    for name, prompts, answers in [
        ('TALLRec Alpaca wording, " Yes" / " No"', alpaca, (" Yes", " No")),
        ('SmolLM2 chat template, "Yes" / "No"', chat, ("Yes", "No")),
        ('SmolLM2 chat template, " Yes" / " No"', chat, (" Yes", " No")),
    ]:
        yes, no = (single_token(tokenizer, a) for a in answers)
        scores = p_yes(model, tokenizer, prompts, yes, no)
        value = auc(labels, scores)
        error = auc_standard_error(value, positives, len(labels) - positives)
        rows.append(
            f"| {name} | {value:.3f} ± {error:.3f} | {np.mean(scores):.3f} | "
            f"{np.mean([len(tokenizer.encode(p)) for p in prompts]):.0f} |"
        )
        print(rows[-1], flush=True)
    lines = [
        f"# Prompt format, zero-shot (SmolLM2-135M-Instruct, no adapter, {len(test)} test samples)",
        "",
        "| prompt | test AUC ± s.e. | mean P(yes) | mean tokens |",
        "|---|---|---|---|",
        *rows,
        "",
        "Example chat prompt:",
        "",
        "```",
        chat[0],
        "```",
        "",
        f"Run: `python bench/bench_prompt_format.py --test {args.test}`",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
