"""The evaluation benchmark: does a meta init adapt better and faster than the alternatives, on tasks it never saw?

    shoplora eval configs/eval/quick.yaml [key=value ...]        # the grid: results.json, results.md, PNG plots
    shoplora compare service-intent-petshop --k 16 --inits default,smollm2-135m-multitask,none   # one task, one seed

Methods, all on the same base model, renderer, support sets and test examples: `zero_shot` (the instruction only),
`icl` (the k examples as earlier chat turns), and LoRA adapted from an init: `lora_standard` (PEFT's init),
`lora_multitask` (multi-task SFT over the meta-train tasks), `lora_average` (the average of per-task adapters on those
tasks, built here) and `lora_meta` (Reptile/FOMAML). Each LoRA method runs the inner loop recorded in its init. The
grid is tasks x shots k x seeds (a seed is a support set); every run is saved to results.json as soon as it is
scored, so `resume=true` continues an interrupted grid (or extends it with more seeds, shots, tasks or methods).

The pieces, one job each: eval_config.py (the config), eval_tasks.py (tasks, support and test sets), eval_cell.py
(one task, k and seed: every method scored), eval_average.py (the lora_average init), eval_grid.py (the grid and its
resume), run_info.py (versions, commit, inits). This module names what callers use and is the entry point:

    python -m train.evaluate configs/eval/quick.yaml [key=value ...]   # the same as `shoplora eval`
"""

import argparse
import sys
from pathlib import Path
from typing import Sequence

from prompts.errors import exit_code

from .eval_average import average_init, average_recipe
from .eval_cell import Result, score_base, score_methods, table
from .eval_config import (
    BASELINES,
    META_INIT,
    METHODS,
    PRACTITIONER,
    EvalConfig,
    SaveAdapter,
    UserTask,
    load_eval_config,
)
from .eval_grid import REPORT, RESULTS, Evaluation, run
from .eval_tasks import grid_tasks, support_set, task_digest, user_task

__all__ = [
    "BASELINES",
    "META_INIT",
    "METHODS",
    "PRACTITIONER",
    "REPORT",
    "RESULTS",
    "EvalConfig",
    "Evaluation",
    "Result",
    "SaveAdapter",
    "UserTask",
    "average_init",
    "average_recipe",
    "grid_tasks",
    "load_eval_config",
    "run",
    "score_base",
    "score_methods",
    "support_set",
    "table",
    "task_digest",
    "user_task",
    "main",
    "evaluate",
]


def evaluate(config_path: str, overrides: Sequence[str] = ()) -> None:
    """Run the grid a config file describes and print its results table and where everything went."""
    config = load_eval_config(config_path, list(overrides))
    results = run(config)
    output_dir = Path(config.output_dir)
    print((output_dir / REPORT).read_text())
    print(f"wrote {output_dir}/results.json, {REPORT} and the plots score_vs_*.png")
    saved = results["saved_adapter"]
    if saved:
        store = saved["store"]
        print(
            f"\nsaved the {saved['method']} adapter of {saved['task']} (k={saved['k']}, seed 0) as "
            f"{saved['name']!r} in {store}:\n"
            f'  CLI:    shoplora predict {saved["name"]} "your customer\'s message" --store {store}\n'
            f"  Python: from adapters import AdapterStore, load_adapter\n"
            f"          adapter = load_adapter({saved['name']!r}, store=AdapterStore({store!r}))\n"
            f'          adapter.predict(["your customer\'s message"])\n'
            f"  UI:     shoplora serve --store {store}   (the Gradio lab and an OpenAI-style API)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m train.evaluate CONFIG.yaml [key=value ...]`; errors are one line, exit 2 for bad input."""
    parser = argparse.ArgumentParser(
        prog="train.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="YAML config, e.g. configs/eval/quick.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config fields to override")
    args = parser.parse_args(argv)
    return exit_code(lambda: evaluate(args.config, args.overrides))


if __name__ == "__main__":
    sys.exit(main())
