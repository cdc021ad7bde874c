"""`shoplora compare TASK` (one task, one support set, several inits: a table), `shoplora eval CONFIG` (the
benchmark grid, train.evaluate) and `shoplora meta-train CONFIG` (train.meta in one process)."""

from __future__ import annotations

import argparse

from adapters.init_catalog import check_init_exists
from prompts import suite


def _compare_inits(args: argparse.Namespace) -> None:
    from adapters import load_base
    from train.eval_cell import score_methods, table

    task = suite.get_task(args.task)
    names = {
        "none": "lora_standard",
        "default": "lora_default",
        "smollm2-135m-meta": "lora_meta",
        "smollm2-135m-multitask": "lora_multitask",
    }
    inits = {
        names.get(init, f"lora_{init}"): None if init == "none" else init
        for init in (part.strip() for part in args.inits.split(","))
        if init
    }
    for init in inits.values():
        check_init_exists(init)
    base = load_base(args.model)
    methods = [*(() if args.no_baselines else ("zero_shot", "icl")), *inits]
    print(
        f"{task.name} ({task.split}), k={args.k}, seed {args.seed}, {args.n_test} test examples, {base.model_id} "
        f"on {base.device}"
    )
    results = score_methods(base, task, k=args.k, seed=args.seed, n_test=args.n_test, methods=methods, inits=inits)
    print(table(list(results)))


def _eval(args: argparse.Namespace) -> None:
    from train.evaluate import evaluate

    evaluate(args.config, args.overrides)


def _meta_train(args: argparse.Namespace) -> None:
    from train.meta import main as meta_main

    code = meta_main([args.config, *args.overrides])
    if code:
        raise SystemExit(code)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `compare` and `eval`."""
    compare_ = commands.add_parser(
        "compare", help="adapt one task from several inits on the same k examples; print a table"
    )
    compare_.add_argument("task", help="task name, e.g. a held-out scenario (see `shoplora tasks list`)")
    compare_.add_argument("--k", type=int, default=16, help="examples to adapt on (default 16)")
    compare_.add_argument(
        "--inits",
        default="default,none",
        help="comma-separated inits: default (the shipped default init), none (standard), a path "
        "or shipped name, e.g. smollm2-135m-meta (default: default,none)",
    )
    compare_.add_argument("--seed", type=int, default=0, help="which support set (default 0)")
    compare_.add_argument("--n-test", type=int, default=50, help="test examples to score (default 50)")
    compare_.add_argument("--no-baselines", action="store_true", help="skip zero-shot and in-context prompting")
    compare_.add_argument("--model", help="base model: hub id or directory (default: the embedded model)")
    compare_.set_defaults(run=_compare_inits)

    eval_ = commands.add_parser(
        "eval",
        help="the evaluation benchmark: methods x k x seeds on held-out and your "
        "tasks; results.json, results.md, plots",
        epilog="config fields: configs/eval/quick.yaml lists every one with its meaning",
    )
    eval_.add_argument("config", help="YAML config, e.g. configs/eval/quick.yaml")
    eval_.add_argument("overrides", nargs="*", metavar="key=value", help="config fields to override, e.g. seeds=2")
    eval_.set_defaults(run=_eval)


def add_meta_train_parser(commands: argparse._SubParsersAction) -> None:
    meta = commands.add_parser("meta-train", help="meta-train a LoRA init (one process; see train.meta)")
    meta.add_argument("config", help="YAML run config, e.g. configs/embedded.yaml")
    meta.add_argument("overrides", nargs="*", help="key=value overrides of config fields")
    meta.set_defaults(run=_meta_train)
