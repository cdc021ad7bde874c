"""Forgetting over a stream of 5 held-out scenarios learned one after another by one adapter.

Each scenario arrives as `--k` examples with its own instruction and labels (`adapter.update(..., scenario=)`).
After each arrival every scenario seen so far is scored on its test examples; backward transfer (BWT) is the mean
change of each earlier scenario's accuracy from right after it was learned to the end (goal: >= -1 point). The same
stream runs once per mode in one process, from the same init and examples:
  own         ShopLoRA's default: each new scenario trains its own copy of the weights (routing by scenario name)
  replay      one shared LoRA, earlier scenarios' examples replayed under their own instructions (`own_weights=False`)
  sequential  one shared LoRA, no replay: plain sequential fine-tuning, which forgets
Run: `python benchmarks/continual.py [--model DIR_OR_ID] [--k 16] [--n-test 30] [--steps N] [--modes own,replay]`
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date

from adapters import adapt, load_base
from adapters.base import device_name
from adapters.metrics import backward_transfer
from prompts.suite import get_task
from train.eval_tasks import support_set

STREAM = ("service-intent-petshop", "reviews-aspect-furniture", "behaviour-churn", "risk-return-abuse", "product-match")


MODES = {"own": {}, "replay": {"own_weights": False}, "sequential": {"own_weights": False, "replay": False}}


def run_stream(base, k: int, n_test: int, steps: int | None, mode: str, init: str) -> list[list[float]]:
    """Accuracy matrix: row i = after learning scenario i, column j = scenario j (j <= i)."""
    tasks = [get_task(name) for name in STREAM]
    adapter, matrix = None, []
    for i, task in enumerate(tasks):
        support = support_set(task, k, seed=0)
        if adapter is None:
            adapter = adapt(base, support, spec=task.spec, init=init, steps=steps)
        else:
            adapter.update(support, spec=task.spec, steps=steps, **MODES[mode])
        row = [adapter.scenario(t.name).evaluate(t.examples("test")[:n_test])["accuracy"] for t in tasks[: i + 1]]
        print(f"  after {task.name:26s} " + " ".join(f"{a:.2f}" for a in row), flush=True)
        matrix.append(row)
    adapter.unload()
    return matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="hub id or directory (default: the embedded model)")
    parser.add_argument("--init", default="default", help="init to adapt from (default: the shipped meta init)")
    parser.add_argument("--k", type=int, default=16, help="examples per scenario")
    parser.add_argument("--n-test", type=int, default=30, help="test examples per scenario")
    parser.add_argument("--steps", type=int, help="steps per scenario (default: the init's inner loop)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}")
    args = parser.parse_args()
    base = load_base(args.model)
    where = device_name(base.device)
    print(
        f"continual benchmark, {date.today()}, {base.model_id}, {where}, init {args.init}, k={args.k}, "
        f"{args.n_test} test examples per scenario"
    )
    results = {}
    for name in args.modes.split(","):
        if name not in MODES:
            parser.error(f"unknown mode {name!r}; modes: {', '.join(MODES)}")
        print(f"{name}:")
        start = time.perf_counter()
        matrix = run_stream(base, args.k, args.n_test, args.steps, name, None if args.init == "none" else args.init)
        bwt = backward_transfer(matrix)
        results[name] = {
            "matrix": matrix,
            "bwt": bwt,
            "final_mean": sum(matrix[-1]) / len(matrix[-1]),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(
            f"  BWT {100 * bwt:+.1f} points (goal >= -1), final mean accuracy {results[name]['final_mean']:.3f}, "
            f"{results[name]['seconds']} s"
        )
    print(json.dumps({name: {k: v for k, v in r.items() if k != "matrix"} for name, r in results.items()}))


if __name__ == "__main__":
    main()
