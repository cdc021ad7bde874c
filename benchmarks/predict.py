"""Label scoring cost: scoring every label of a classify task vs one plain forward of the same prompts, in one run.

ShopLoRA runs each prompt once and scores all labels from its KV cache. Goal: <= 1.5x a plain forward, whatever the
number of labels. Also prints predictions/s.
Run: `python benchmarks/predict.py [--model DIR_OR_ID] [--n 32] [--batch-size 8]`
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import torch

from adapters import load_base
from adapters.base import device_name
from adapters.generation import left_pad
from adapters.scoring import label_scores
from prompts import TaskSpec, suite
from prompts.render import prompt_ids

INTENTS_27 = suite.get_task("hub-bitext-intent").spec


def plain_forward(model, tokenizer, spec, inputs, batch_size):
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            prompts = [prompt_ids(spec, text, tokenizer) for text in inputs[start : start + batch_size]]
            ids, mask = left_pad(prompts, tokenizer.pad_token_id, device)
            model(input_ids=ids, attention_mask=mask)


def timed(fn) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="hub id or directory (default: the embedded model)")
    parser.add_argument("--n", type=int, default=32, help="inputs to score")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    base = load_base(args.model)
    model, tokenizer = base.model, base.tokenizer
    inputs = [e.input for e in suite.get_task("service-intent").examples("test")[: args.n]]
    many = TaskSpec(
        "intents-100",
        "service",
        "classify",
        INTENTS_27.instruction,
        labels=tuple(f"{label}_{i}" for i in range(4) for label in INTENTS_27.labels)[:100],
    )
    where = device_name(base.device)
    print(f"predict benchmark, {date.today()}, {base.model_id}, {where}, {base.model.dtype}, {args.n} inputs")
    for spec in (INTENTS_27, many):
        plain = timed(lambda: plain_forward(model, tokenizer, spec, inputs, args.batch_size))
        scored = timed(lambda: label_scores(model, tokenizer, spec, inputs, batch_size=args.batch_size))
        print(
            f"{len(spec.labels):4d} labels: plain forward {plain:6.2f} s, label scoring {scored:6.2f} s "
            f"-> {scored / plain:.2f}x (goal <= 1.5x), {args.n / scored:.1f} predictions/s"
        )


if __name__ == "__main__":
    main()
