"""`shoplora discover ADAPTER TRAFFIC.jsonl`: what customers ask that the adapter does not cover, as clusters with
proposed labels written to an editable JSONL; `--teach EDITED.jsonl` teaches the accepted labels (adapters.discover)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prompts import ShopLoRAError

DEFAULT_OUT = "proposals.jsonl"


def add_parser(commands, default_store: str, store_help: str) -> None:
    """Register the `discover` subcommand on the CLI's subparsers."""
    from adapters.discover import DEFAULT_ABSTAIN, MAX_CLUSTERS

    parser = commands.add_parser(
        "discover",
        help="find what customers ask that an adapter does not cover: clusters of its unsure messages "
        "with proposed labels (an editable JSONL); --teach adds the accepted labels",
        epilog='traffic rows: {"input": "...", "timestamp": "2026-12-01T09:30:00Z"} (text also as \'text\' or '
        "'message'; the timestamp is optional). Flow: discover -> edit the JSONL (rename labels, delete rows "
        "that do not belong) -> discover ... --teach EDITED.jsonl",
    )
    parser.add_argument("name", help="stored adapter name (a classify adapter)")
    parser.add_argument(
        "traffic",
        help="JSONL/CSV of customer messages; with --teach, its confident answers are "
        "checked again after teaching (old labels must stay put)",
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"proposals to edit (default {DEFAULT_OUT})")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument(
        "--teach",
        metavar="EDITED",
        help="update the adapter with these edited proposals (new labels "
        "join it; earlier examples are replayed), save it in the store, report accuracy",
    )
    parser.add_argument(
        "--test",
        metavar="LABELLED",
        help="with --teach: labelled examples (input, output) to measure old- and new-label accuracy before and after",
    )
    parser.add_argument(
        "--abstain-below",
        type=float,
        default=DEFAULT_ABSTAIN,
        help=f"a message is unsure below this confidence (default {DEFAULT_ABSTAIN})",
    )
    parser.add_argument(
        "--max-clusters",
        type=int,
        default=MAX_CLUSTERS,
        help=f"most clusters tried (default {MAX_CLUSTERS}; the silhouette chooses how many)",
    )
    parser.add_argument("--scenario", help="the adapter's scenario to look from (default: its latest)")
    parser.add_argument("--json", action="store_true", help="print the clusters as JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", default=default_store, help=store_help)
    parser.add_argument("--model", help="base model to load the adapter onto (default: the one it was trained on)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from adapters import AdapterStore
    from adapters.discover import check_traffic, load_traffic

    if not args.abstain_below > 0.0:  # above 1: every message counts as unsure
        raise ShopLoRAError(f"--abstain-below is a confidence threshold above 0, e.g. 0.5; got {args.abstain_below}")
    store = AdapterStore(args.store)
    store.read(args.name)  # every check that needs no model comes first: an unknown name, a bad file
    texts, times = load_traffic(args.traffic)
    check_traffic(texts)
    if args.teach:
        return _teach(args, store, texts)
    if args.test:
        raise ShopLoRAError("--test goes with --teach EDITED.jsonl")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ShopLoRAError(f"{out} exists (maybe your edits); pass --overwrite or another --out")
    if not out.parent.is_dir():
        raise ShopLoRAError(f"cannot write {out}: no folder {out.parent}")
    found = _discover(args, store, texts, times)
    from prompts.atomic import write_atomic

    write_atomic(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in found.proposals()))
    if args.json:
        print(json.dumps(found.summary(), indent=2, ensure_ascii=False))
    else:
        print(_summary(found))
    print(
        f"\nwrote {out}: {found.n_unsure} proposed examples in {len(found.clusters)} clusters. Edit the outputs "
        "(rename a label, or give an existing one), delete the rows that do not belong, then teach them:\n"
        f"  shoplora discover {args.name} {args.traffic} --teach {out} --store {store.root}"
    )


def _load(args: argparse.Namespace, store):
    from adapters import load_adapter, load_base

    adapter = load_adapter(args.name, store=store, base=load_base(args.model) if args.model else None)
    return adapter.scenario(args.scenario) if args.scenario else adapter


def _discover(args: argparse.Namespace, store, texts, times):
    from adapters.discover import discover
    from adapters.optional import require_sklearn

    require_sklearn("discovery (it clusters messages)")
    adapter = _load(args, store)
    return discover(
        adapter,
        texts,
        timestamps=times,
        abstain_below=args.abstain_below,
        max_clusters=args.max_clusters,
        seed=args.seed,
    )


def _summary(found) -> str:
    lines = [
        f"{found.n_messages} messages, {found.n_unsure} unsure (confidence below {found.abstain_below}); "
        f"{found.method} (best silhouette of {len(found.silhouettes)} tried)"
    ]
    for number, cluster in enumerate(found.clusters, start=1):
        guess = f"; the adapter's best guess: {cluster.adapter_guess}" if cluster.adapter_guess else ""
        lines.append(
            f"\n{number}. {cluster.label}: {cluster.size} messages ({100 * cluster.share:.0f}% of the unsure){guess}"
        )
        lines += [f"   - {text[:100]}" for text in cluster.typical]
        if cluster.timeline:
            lines.append(
                "   over time: "
                + ", ".join(f"{row['period']} {100 * row['share']:.0f}%" for row in cluster.timeline[-8:])
            )
    return "\n".join(lines)


def _teach(args: argparse.Namespace, store, texts) -> None:
    from adapters.discover import teach
    from prompts import load_examples

    examples = load_examples(args.teach)  # a bad edit fails before the model loads
    test = load_examples(args.test) if args.test else None
    adapter = _load(args, store)
    if adapter.spec.kind != "classify":
        raise ShopLoRAError(f"{args.name} is a {adapter.spec.kind} adapter; discovery teaches classify adapters")
    report = teach(adapter, examples, traffic=texts, test=test, abstain_below=args.abstain_below, seed=args.seed)
    path = store.save(adapter, args.name, overwrite=True)  # the version before stays in the store's history
    print(json.dumps({"name": args.name, **report}, indent=2))
    lost = report["forgetting_points"]
    if lost is not None and lost > 1.0:
        print(
            f"warning: old labels lost {lost:.1f} points (the goal is at most 1); the version before teaching is "
            "kept among the store's previous versions (AdapterStore.previous_versions)",
            file=sys.stderr,
        )
    print(f"saved {path}; new labels: {', '.join(report['new_labels']) or 'none'}")
