"""`shoplora predict NAME TEXT...` (answer with a stored adapter) and `shoplora adapters list | show | delete`."""

from __future__ import annotations

import argparse
import json

from prompts import ShopLoRAError


def _predict(args: argparse.Namespace) -> None:
    from adapters import AdapterStore, load_adapter, load_base
    from prompts import load_inputs

    store = AdapterStore(args.store)
    store.read(args.name)  # an unknown name fails here, before the base model loads
    inputs = load_inputs(args.file) if args.file else args.texts
    if not inputs:
        raise ShopLoRAError("nothing to predict: pass texts after the name, or --file inputs.jsonl")
    adapter = load_adapter(args.name, store=store, base=load_base(args.model) if args.model else None)
    if args.scenario:
        adapter = adapter.scenario(args.scenario)
    for text, prediction in zip(inputs, adapter.predict(inputs, abstain_below=args.abstain_below)):
        print(json.dumps({"input": text, **prediction.to_dict()}, ensure_ascii=False))


def _adapters(args: argparse.Namespace) -> None:
    from adapters import AdapterStore

    store = AdapterStore(args.store)
    if args.action == "list":
        rows = store.list()
        print(
            json.dumps(rows, indent=2)
            if args.json
            else "\n".join(
                f"{r['name']:24} {r.get('kind') or '?':9} {r.get('labels', '')!s:>3} labels  "
                f"{r.get('examples') or ''!s:>5} examples  init={r.get('init')}"
                if "error" not in r
                else f"{r['name']:24} BROKEN: {r['error']}"
                for r in rows
            )
            or f"no adapters in {store.root}"
        )
    elif args.action == "show":
        print(json.dumps(store.show(args.name).to_json(), indent=2))
    else:
        store.delete(args.name)
        print(f"deleted {args.name}")


def add_parser(commands: argparse._SubParsersAction, default_store: str, store_help: str) -> None:
    predict = commands.add_parser("predict", help="answer texts with a stored adapter (one JSON line per input)")
    predict.add_argument("name", help="stored adapter name")
    predict.add_argument("texts", nargs="*", help="inputs to answer")
    predict.add_argument("--file", help="JSONL/CSV of inputs (an 'input' column; 'output' is optional)")
    predict.add_argument("--store", default=default_store, help=store_help)
    predict.add_argument("--abstain-below", type=float, help="answer 'abstain' below this confidence (classify)")
    predict.add_argument("--scenario", help="answer this earlier scenario of the adapter (default: its latest)")
    predict.add_argument("--model", help="base model to load the adapter onto (default: the one it was trained on)")
    predict.set_defaults(run=_predict)

    adapters = commands.add_parser("adapters", help="list, show or delete stored adapters")
    adapters.add_argument("action", choices=["list", "show", "delete"])
    adapters.add_argument("name", nargs="?", help="adapter name (show, delete)")
    adapters.add_argument("--store", default=default_store, help=store_help)
    adapters.add_argument("--json", action="store_true", help="list as JSON")
    adapters.set_defaults(run=_adapters)
