"""`shoplora` subcommands. Each parses its arguments and calls the library; errors become one-line messages.

One module per command group registers its subcommands here: tasks_cmd (tasks, try), adapt_cmd (adapt), store_cmd
(predict, adapters), bench_cmd (compare, eval, meta-train), serve_cmd, export_cmd, chat_cmd, discover_cmd."""

from __future__ import annotations

import argparse
import os

from prompts.errors import exit_code

from . import adapt_cmd, bench_cmd, chat_cmd, discover_cmd, export_cmd, serve_cmd, store_cmd, tasks_cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoplora", description="Meta-learned LoRA inits for few-shot e-commerce tasks."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks_cmd.add_parser(commands)
    store_help = "adapter store folder (default: $SHOPLORA_STORE or ./adapters_store)"
    default_store = os.environ.get("SHOPLORA_STORE", "adapters_store")
    adapt_cmd.add_parser(commands, default_store, store_help)
    store_cmd.add_parser(commands, default_store, store_help)
    bench_cmd.add_parser(commands)
    serve_cmd.add_parser(commands, default_store, store_help)
    bench_cmd.add_meta_train_parser(commands)
    export_cmd.add_parser(commands, default_store, store_help)
    chat_cmd.add_parser(commands, default_store, store_help)
    discover_cmd.add_parser(commands, default_store, store_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "action", None) in ("show", "delete") and not args.name:
        parser.error(f"adapters {args.action} needs a NAME")
    return exit_code(lambda: args.run(args))
