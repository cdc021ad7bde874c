"""`shoplora chat NAME`: talk to a stored adapter in the terminal, one message a line; `/quit` or end of input
(Ctrl-D) leaves. Classify adapters answer each message with a label and its confidence, others stream the answer."""

from __future__ import annotations

import argparse
import sys

QUIT = ("/quit", "/exit")


def _chat(args: argparse.Namespace) -> None:
    from adapters import AdapterStore, load_adapter, load_base

    store = AdapterStore(args.store)
    store.read(args.name)  # an unknown name fails here, before the base model loads
    adapter = load_adapter(args.name, store=store, base=load_base(args.model) if args.model else None)
    if args.scenario:
        adapter = adapter.scenario(args.scenario)
    spec = adapter.spec
    what = f"{len(spec.labels)} labels" if spec.kind == "classify" else spec.kind
    print(
        f"chatting with {args.name} ({spec.kind}: {what}); each message is answered on its own, not as a "
        f"conversation; /quit or Ctrl-D leaves",
        file=sys.stderr,
    )
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", flush=True, file=sys.stderr)
        line = sys.stdin.readline()
        if not line or line.strip() in QUIT:  # "" is end of input
            return
        text = line.strip()
        if not text:
            continue
        if spec.kind == "classify":
            prediction = adapter.predict([text], abstain_below=args.abstain_below)[0]
            runner_up = sorted(prediction.scores.items(), key=lambda item: -item[1])[1:3]
            others = ", ".join(f"{label} {p:.2f}" for label, p in runner_up)
            print(f"{prediction.label}  (confidence {prediction.confidence:.2f}; next: {others})", flush=True)
        else:
            pieces = adapter.stream(text, max_new_tokens=args.max_new_tokens)
            try:
                for piece in pieces:
                    print(piece, end="", flush=True)
            finally:
                pieces.close()
            print(flush=True)


def add_parser(commands: argparse._SubParsersAction, default_store: str, store_help: str) -> None:
    parser = commands.add_parser(
        "chat",
        help="talk to a stored adapter in the terminal (classify: label and "
        "confidence per message; others: a streamed answer)",
    )
    parser.add_argument("name", help="stored adapter name")
    parser.add_argument("--store", default=default_store, help=store_help)
    parser.add_argument("--scenario", help="answer as this earlier scenario of the adapter (default: its latest)")
    parser.add_argument("--abstain-below", type=float, help="answer 'abstain' below this confidence (classify)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="longest answer in tokens (default 256)")
    parser.add_argument("--model", help="base model to load the adapter onto (default: the one it was trained on)")
    parser.set_defaults(run=_chat)
