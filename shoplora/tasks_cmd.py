"""`shoplora tasks list | show | export` (the built-in tasks) and `shoplora try TASK` (the base model zero-shot)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prompts import suite
from prompts.suite import SUITES


def _tasks_list(args: argparse.Namespace) -> None:
    names = [args.suite] if args.suite else suite.available_suites()
    rows = [t.summary() for name in names for t in suite.tasks(name, split=args.split)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    header = ("name", "suite", "family", "kind", "n_labels", "split")
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header] if rows else [len(h) for h in header]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for row in rows:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(header, widths)).rstrip())
    if not args.suite and "real-v1" not in names:
        print("\n(real-v1 is not listed: set SHOPLORA_DATA_DIR to the real-data folder to include it)")


def _tasks_show(args: argparse.Namespace) -> None:
    task = suite.get_task(args.name)
    print(json.dumps(task.describe(), indent=2))
    for example in task.examples("train")[: args.n]:
        print(f"\n--- input\n{example.input}\n--- output\n{example.output}")


def _tasks_export(args: argparse.Namespace) -> None:
    task = suite.get_task(args.name)
    target = task.export(Path(args.dir), seed=args.seed, overwrite=args.overwrite, datasets=args.datasets)
    print(
        f"wrote {target}/train.jsonl, test.jsonl and task.json"
        + (" and dataset/ (datasets.load_from_disk)" if args.datasets else "")
    )


def _try(args: argparse.Namespace) -> None:
    from adapters import generate, load_base

    task = suite.get_task(args.task)
    base = load_base(args.model)
    examples = task.examples("test")[: args.n]
    answers = generate(base, task.spec, [e.input for e in examples], max_new_tokens=args.max_new_tokens)
    print(f"{task.name} ({task.spec.kind}, {task.split}) zero-shot on {base.model_id}, {base.device}")
    for example, answer in zip(examples, answers):
        print(f"\n--- input\n{example.input}\n--- expected\n{example.output}\n--- model\n{answer}")


def add_parser(commands: argparse._SubParsersAction) -> None:
    tasks = commands.add_parser("tasks", help="list, show and export the built-in tasks")
    tasks_commands = tasks.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    listing = tasks_commands.add_parser("list", help="one line per task: name, suite, family, kind, labels, split")
    listing.add_argument("--suite", choices=list(SUITES), help="only this suite (default: all available here)")
    listing.add_argument("--split", choices=["meta-train", "held-out"], help="only this split")
    listing.add_argument("--json", action="store_true", help="print a JSON list of objects instead of a table")
    listing.set_defaults(run=_tasks_list)
    show = tasks_commands.add_parser("show", help="a task's spec and a few training examples")
    show.add_argument("name", help="task name (see `shoplora tasks list`)")
    show.add_argument("-n", type=int, default=3, help="how many examples to print (default 3)")
    show.set_defaults(run=_tasks_show)
    export = tasks_commands.add_parser("export", help="write a task's train/test examples as JSONL to DIR/NAME/")
    export.add_argument("name", help="task name (see `shoplora tasks list`)")
    export.add_argument("dir", help="directory to write into")
    export.add_argument("--seed", type=int, default=0, help="generation seed for generated suites (default 0)")
    export.add_argument("--overwrite", action="store_true", help="replace DIR/NAME if it exists")
    export.add_argument(
        "--datasets",
        action="store_true",
        help="also write DIR/NAME/dataset/, a datasets DatasetDict (train, test) for datasets.load_from_disk",
    )
    export.set_defaults(run=_tasks_export)

    try_ = commands.add_parser("try", help="ask the base model a task's test inputs zero-shot (greedy)")
    try_.add_argument("task", help="task name (see `shoplora tasks list`)")
    try_.add_argument("-n", type=int, default=3, help="how many test examples (default 3)")
    try_.add_argument("--model", help="hub id or local directory (default: the embedded SmolLM2-135M-Instruct)")
    try_.add_argument("--max-new-tokens", type=int, default=48, help="answer length limit in tokens (default 48)")
    try_.set_defaults(run=_try)
