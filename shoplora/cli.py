"""`shoplora` subcommands. Each parses its arguments and calls the library; errors become one-line messages."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from prompts import ShopLoRAError, suite
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
    target = Path(args.dir) / task.name
    if target.exists() and not args.overwrite:
        raise ShopLoRAError(f"{target} already exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write everything into a temp dir beside the target and rename it: an interrupted export leaves nothing.
    staging = Path(tempfile.mkdtemp(prefix=f".{task.name}-", dir=target.parent))
    try:
        (staging / "task.json").write_text(json.dumps(task.describe(), indent=2) + "\n")
        for part in ("train", "test"):
            lines = (json.dumps(e.to_dict(), ensure_ascii=False) for e in task.examples(part, seed=args.seed))
            (staging / f"{part}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {target}/train.jsonl, test.jsonl and task.json")


def _try(args: argparse.Namespace) -> None:
    from adapters import generate, load_base

    task = suite.get_task(args.task)
    base = load_base(args.model)
    examples = task.examples("test")[: args.n]
    answers = generate(base, task.spec, [e.input for e in examples], max_new_tokens=args.max_new_tokens)
    print(f"{task.name} ({task.spec.kind}, {task.split}) zero-shot on {base.model_id}, {base.device}")
    for example, answer in zip(examples, answers):
        print(f"\n--- input\n{example.input}\n--- expected\n{example.output}\n--- model\n{answer}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoplora", description="Meta-learned LoRA inits for few-shot e-commerce tasks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    export.set_defaults(run=_tasks_export)

    try_ = commands.add_parser("try", help="ask the base model a task's test inputs zero-shot (greedy)")
    try_.add_argument("task", help="task name (see `shoplora tasks list`)")
    try_.add_argument("-n", type=int, default=3, help="how many test examples (default 3)")
    try_.add_argument("--model", help="hub id or local directory (default: the embedded SmolLM2-135M-Instruct)")
    try_.add_argument("--max-new-tokens", type=int, default=48, help="answer length limit in tokens (default 48)")
    try_.set_defaults(run=_try)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ShopLoRAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `shoplora tasks list | head` closes the pipe early; that is not an error
        return 0
    except Exception as error:  # a bug, not bad input: one line, and the traceback only when asked for
        if os.environ.get("SHOPLORA_DEBUG"):
            raise
        print(f"error: unexpected {type(error).__name__}: {error}\n(run again with SHOPLORA_DEBUG=1 for the "
              "traceback, and please report it)", file=sys.stderr)
        return 1
    return 0
