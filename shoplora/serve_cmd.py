"""`shoplora serve`: the Gradio lab and the OpenAI-style API on one port, with an optional login."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from adapters.init_catalog import check_init_exists
from prompts import ShopLoRAError


AUTH_VARIABLE = "SHOPLORA_AUTH"


def _serve_auth(args: argparse.Namespace) -> tuple[str, str] | None:
    """The login `serve` asks for: --auth-file, else --auth, else $SHOPLORA_AUTH, else none. A file or the variable
    keeps the password out of `ps`, where any user of the machine can read a command line."""
    if args.auth and args.auth_file:
        raise ShopLoRAError("give the login once: --auth-file PATH or --auth USER:PASS, not both")
    if args.auth_file:
        source = f"--auth-file {args.auth_file}"
        try:
            pair = Path(args.auth_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError) as error:
            raise ShopLoRAError(f"cannot read {source} ({error}); write USER:PASS in it, on one line") from None
    elif args.auth:
        source, pair = "--auth", args.auth
        print(
            f"note: --auth is visible to other users in `ps`; prefer {AUTH_VARIABLE}=USER:PASS or --auth-file PATH",
            file=sys.stderr,
        )
    else:
        source, pair = AUTH_VARIABLE, os.environ.get(AUTH_VARIABLE, "")
        if not pair:
            return None
    user, sep, password = pair.partition(":")
    if not sep or not user or not password:
        raise ShopLoRAError(f"{source} takes USER:PASS, e.g. support:s3cret")
    return user, password


def _serve(args: argparse.Namespace) -> None:
    from adapters import AdapterStore, load_base
    from adapters.init_catalog import trained_base_settings
    from serve.server import check_port, serve
    from serve.engine import Engine

    auth = _serve_auth(args)
    store = AdapterStore(args.store)
    check_init_exists(args.init)
    check_port(args.host, args.port)  # a port in use fails now, not after the model has loaded
    # the base as the served init was meta-trained on it (its quantization and dtype), as the evaluation loads it
    trained = trained_base_settings([args.init])
    base = load_base(args.model, dtype=trained.get("dtype") or "float32", quantization=trained.get("quantization"))
    engine = Engine(
        base,
        store,
        meta_init=args.init,
        max_loaded=args.max_loaded,
        max_pending=args.max_pending,
        max_new_tokens=args.max_new_tokens,
        time_limit=args.time_limit,
    )
    serve(engine, host=args.host, port=args.port, auth=auth, max_file_size=args.max_file_size)


def add_parser(commands: argparse._SubParsersAction, default_store: str, store_help: str) -> None:
    serve_ = commands.add_parser(
        "serve",
        help="the Gradio lab (chat, teach, compare) and an OpenAI-style API "
        "(/v1/chat/completions, /v1/models) on one port",
    )
    serve_.add_argument("--store", default=default_store, help=store_help)
    serve_.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve_.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    serve_.add_argument(
        "--auth",
        metavar="USER:PASS",
        help="require this login for the page; API clients send "
        "'Authorization: Bearer USER:PASS'. Visible to other users in `ps`: prefer --auth-file or "
        f"the {AUTH_VARIABLE} environment variable",
    )
    serve_.add_argument("--auth-file", metavar="PATH", help="read the USER:PASS login from this file (one line)")
    serve_.add_argument("--model", help="base model: hub id or directory (default: the embedded model)")
    serve_.add_argument(
        "--init",
        default="default",
        help="init served as 'meta-init' and adapted from (default: the shipped one; none for a standard LoRA init)",
    )
    serve_.add_argument("--max-loaded", type=int, default=4, help="stored adapters kept in memory (default 4)")
    serve_.add_argument(
        "--max-pending",
        type=int,
        default=16,
        help="requests waiting at once before new ones are told to retry (default 16)",
    )
    serve_.add_argument("--max-new-tokens", type=int, default=256, help="longest answer in tokens (default 256)")
    serve_.add_argument("--time-limit", type=float, default=60.0, help="seconds one answer may take (default 60)")
    serve_.add_argument("--max-file-size", default="5mb", help="largest upload (default 5mb)")
    serve_.set_defaults(run=_serve)
