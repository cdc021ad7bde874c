"""Wall time to adapt to 16 and 128 examples vs a plain PEFT training loop over the same examples, in one run.

shoplora: `adapters.adapt(...)` end to end (rendering, held-out checks, early stopping
          from 40 examples, calibration included)
plain:    PEFT LoRA on the same base, right-padded batches, `model(input_ids, labels=...)` + AdamW, same steps
Goal on 2 CPU cores: 16 examples in <= 30 s (GPU: <= 5 s).
Run: `python benchmarks/adapt.py [--model DIR_OR_ID] [--init default|none|PATH] [--task service-intent-petshop]`
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import date

from adapters import adapt, load_base
from adapters.base import device_name
from adapters.lora import LoraSettings, add_lora, lora_parameters, remove_lora
from adapters.training import make_optimizer
from prompts import suite
from prompts.render import render
from train.baselines import plain_loss


def plain_loop(base, spec, examples, steps: int, batch_size: int, lr: float) -> float:
    """A hand-written PEFT training loop: what a user would write without ShopLoRA."""
    start = time.perf_counter()
    rendered = [render(spec, e, base.tokenizer) for e in examples]
    model = add_lora(base, "plain-loop", LoraSettings())
    params = list(lora_parameters(model, "plain-loop").values())
    for param in params:
        param.requires_grad_(True)
    optimizer = make_optimizer("adam", params, lr)
    rng = random.Random(0)
    model.train()
    pad = base.tokenizer.pad_token_id
    for _ in range(steps):
        batch = rng.sample(rendered, min(batch_size, len(rendered)))
        plain_loss(model, batch, pad, base.device).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    remove_lora(base, "plain-loop")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="hub id or directory (default: the embedded model)")
    parser.add_argument("--init", default="none", help="init for adapt (default: none, the standard LoRA init)")
    parser.add_argument("--task", default="service-intent-petshop")
    parser.add_argument("--sizes", default="16,128")
    args = parser.parse_args()
    base = load_base(args.model)
    task = suite.get_task(args.task)
    where = device_name(base.device)
    print(
        f"adapt benchmark, {date.today()}, {base.model_id}, {where}, {base.model.dtype}, task {task.name}, "
        f"init {args.init}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        examples = task.examples("train")[:size]
        start = time.perf_counter()
        adapter = adapt(base, examples, spec=task.spec, init=None if args.init == "none" else args.init)
        ours = time.perf_counter() - start
        fit = adapter.record.fit
        adapter.unload()
        plain = plain_loop(base, task.spec, examples, fit.steps_run, fit.inner_loop.batch_size, fit.inner_loop.lr)
        accuracy = fit.metrics.get("held_out_accuracy")
        print(
            f"{size:4d} examples: shoplora adapt {ours:6.1f} s ({fit.steps_run} steps, held-out accuracy "
            f"{accuracy if accuracy is not None else 'n/a'}), plain PEFT loop {plain:6.1f} s "
            f"-> {ours / plain:.2f}x the plain loop's time"
        )


if __name__ == "__main__":
    main()
