"""ShopLoRA's inner step vs a plain PEFT LoRA SFT step, on the same model and the same examples, in one run.

plain:    right-padded batches in random order, `model(input_ids, labels=...)` (LM head on every position) + AdamW
shoplora: length-grouped, left-padded batches, LM head on the answer positions only (`adapters.training`) + AdamW
Prints real (non-pad) tokens/s of each, their ratio (goal >= 1.3x, never below 0.9x) and peak memory. Then one
outer step of Reptile and of FOMAML through the recipe (train.meta; 2 tasks, `--batches` inner steps each): the
seconds it spends beside its inner steps (goal: <= 10% of them), split into the query pass (Reptile: the query
loss for the progress bar; FOMAML: its query gradient, part of the algorithm) and everything else (copying the init,
the meta-gradient, the outer optimizer, sampling and rendering episodes). Each method runs in a process of its own,
so the peak memory of one is not hidden by the other's.
Run: `python benchmarks/meta_step.py [--model DIR_OR_ID] [--dtype bfloat16] [--batches 4] [--batch-size 8]
[--json FILE]` (--json also writes the figures to FILE; benchmarks/gpu_check.py reads them).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date

import torch

from adapters import load_base
from adapters.base import device_name
from adapters.lora import LoraSettings, add_lora, lora_parameters
from adapters.training import answer_loss, collate, length_batches, make_optimizer
from prompts import suite
from prompts.render import render
from train.baselines import plain_loss

OUTER = ("reptile", "fomaml")  # meta algorithms whose outer step is timed
TASKS = ("service-intent", "search-relevance", "reviews-stars", "product-attributes", "risk-fraud", "service-reply")


def timed(model, batches, loss_fn, device) -> float:
    params = list(lora_parameters(model, "bench").values())
    for param in params:
        param.requires_grad_(True)
    optimizer = make_optimizer("adam", params, lr=1e-4)
    loss_fn(batches[0]).backward()  # warm-up: first-call allocations and kernel selection
    optimizer.zero_grad()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for batch in batches:
        loss_fn(batch).backward()
        optimizer.step()
        optimizer.zero_grad()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory(device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB CUDA allocated"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB max RSS"


def run_method(args) -> dict:
    base = load_base(args.model, dtype=args.dtype)
    device = base.model.device
    model = add_lora(base, "bench", LoraSettings(r=16, alpha=32))
    model.train()
    rng = random.Random(0)
    pool = [
        render(suite.get_task(name).spec, e, base.tokenizer)
        for name in TASKS
        for e in suite.get_task(name).examples("train")[:16]
    ]
    rng.shuffle(pool)
    n = args.batches * args.batch_size
    plain_batches = [pool[i : i + args.batch_size] for i in range(0, n, args.batch_size)]
    ours_batches = [[pool[i] for i in b] for b in length_batches(pool[:n], args.batch_size, rng)]
    tokens = sum(len(r) for r in pool[:n])
    pad = base.tokenizer.pad_token_id

    if args.method == "plain":
        seconds = timed(model, plain_batches, lambda b: plain_loss(model, b, pad, device), device)
    else:
        seconds = timed(model, ours_batches, lambda b: answer_loss(model, collate(b, pad, device)), device)
    where = device_name(device)
    return {
        "seconds": seconds,
        "tokens": tokens,
        "memory": peak_memory(device),
        "device": where,
        "model": base.model_id,
        "dtype": str(base.model.dtype),
    }


def run_outer_step(args) -> dict:
    """Two outer steps of `args.method` through the recipe; the second one is timed (the first warms up)."""
    from train.config import build_config
    from train.meta import MetaTrainer

    with tempfile.TemporaryDirectory() as output_dir:
        config = build_config(
            {
                "base_model": args.model,
                "tasks": list(TASKS),
                "algorithm": args.method,
                "output_dir": output_dir,
                "outer_steps": 2,
                "meta_batch_size": 2,
                "dtype": args.dtype,
                "support_k": [args.batch_size] * 2,
                "query_k": args.batch_size,
                "inner_steps": args.batches,
                "inner_batch_size": args.batch_size,
                "warmup_steps": 0,
                "validation_tasks": 0,
                "save_every": 0,
            }
        )
        trainer = MetaTrainer(config)
        try:
            trainer.setup()
            trainer.train()
            curve = trainer.curves["train"]
            device = trainer.accelerator.device
            return {key: curve[key][-1] for key in ("seconds", "inner_seconds", "query_seconds")} | {
                "memory": peak_memory(device)
            }
        finally:
            trainer.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="hub id or directory (default: the embedded model)")
    parser.add_argument("--batches", type=int, default=4, help="timed steps per method")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default="float32", help="the base model's dtype: float32 | bfloat16 | auto")
    parser.add_argument("--json", help="also write every method's figures to this file")
    parser.add_argument("--method", choices=["plain", "shoplora", *OUTER], help=argparse.SUPPRESS)  # one child
    args = parser.parse_args()
    if args.method:
        print(json.dumps(run_outer_step(args) if args.method in OUTER else run_method(args)))
        return
    results = {}
    for method in ("plain", "shoplora", *OUTER):
        child = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--method", method], capture_output=True, text=True, check=True
        )
        results[method] = json.loads(child.stdout.strip().splitlines()[-1])
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {"date": str(date.today()), "batches": args.batches, "batch_size": args.batch_size, **results},
                out,
                indent=1,
            )
    plain, ours = results["plain"], results["shoplora"]
    print(f"meta_step benchmark, {date.today()}, {ours['model']}, {ours['device']}, {ours['dtype']}")
    print(f"{args.batches} steps x {args.batch_size} examples, {ours['tokens']} real tokens per method")
    for label, r in (("plain PEFT SFT step", plain), ("ShopLoRA inner step", ours)):
        print(
            f"{label} : {r['tokens'] / r['seconds']:8.0f} tokens/s  ({r['seconds'] / args.batches:.2f} s/step)  "
            f"peak {r['memory']}"
        )
    print(f"ratio (ShopLoRA / plain): {plain['seconds'] / ours['seconds']:.2f}x  (goal >= 1.3x, never below 0.9x)")
    for method in OUTER:
        r = results[method]
        other = r["seconds"] - r["inner_seconds"] - r["query_seconds"]
        print(
            f"{method} outer step: {r['seconds']:.2f} s = inner steps {r['inner_seconds']:.2f} s + query pass "
            f"{r['query_seconds']:.2f} s + other {other:.2f} s; beside the inner steps: "
            f"{(r['seconds'] - r['inner_seconds']) / r['inner_seconds']:.1%} (other alone "
            f"{other / r['inner_seconds']:.1%}; goal <= 10%)  peak {r['memory']}"
        )


if __name__ == "__main__":
    main()
