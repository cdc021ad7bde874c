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
resume), run_info.py (versions, commit, inits). This module names what callers use.
"""

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
]
