"""`shoplora adapt DATA`: learn a task from a file of examples (or `--continue` a stored adapter) and save it."""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections import Counter
from pathlib import Path

from adapters.init_catalog import check_init_exists
from adapters.specs import CALIBRATION  # names only: importing it loads no torch
from prompts import ShopLoRAError
from prompts.spec import NAME_PATTERN


def _adapt(args: argparse.Namespace) -> None:
    from adapters import AdapterStore, adapt, load_base
    from adapters.fit import AdaptationWarning
    from adapters.specs import LabelCoverageWarning
    from adapters.files import check_name
    from adapters.trackers import check_report_to, report_adaptation

    check_report_to(args.report_to, "--report-to")  # a missing package fails now, not after training
    store = AdapterStore(args.store)
    columns = {k: v for k, v in (("input", args.input_column), ("output", args.output_column)) if v}
    labels = _labels(args.labels)
    if args.continue_:
        adapter = _continue(args, store, labels, columns or None)
        name, overwrite = args.continue_, True  # the version before the update stays recoverable in the store
    else:
        if not args.instruction:  # chat-format data (messages) may carry it as the system turn
            from prompts.loaders import chat_system_prompt

            args.instruction = chat_system_prompt(args.data)
        if not args.instruction:
            raise ShopLoRAError(
                "--instruction is required: say what the model should do, e.g. "
                '--instruction "Classify the customer\'s message."'
            )
        name = check_name(args.name) if args.name else _default_name(args.data)
        if name in store.names() and not args.overwrite:  # fail before minutes of training, not after
            raise ShopLoRAError(f"adapter {name!r} already exists in {store.root}; pass --overwrite or another --name")
        check_init_exists(args.init)
        with warnings.catch_warnings():  # printed below as one line, not as Python's warning with a source line
            warnings.simplefilter("ignore", LabelCoverageWarning)
            warnings.simplefilter("ignore", AdaptationWarning)
            base = load_base(args.model)
            if labels and args.kind in (None, "classify"):
                _check_labels_fit(base, args.instruction, labels)
            adapter = adapt(
                base,
                args.data,
                instruction=args.instruction,
                labels=labels,
                kind=args.kind,
                scenario=args.scenario or "custom",
                init=args.init,
                steps=args.steps,
                lr=args.lr,
                seed=args.seed,
                columns=columns or None,
                examples_needed_for=args.examples_needed_for,
                contextual_calibration=args.calibration,
                keep=args.keep,
            )
        overwrite = args.overwrite
    path = store.save(adapter, name, overwrite=overwrite)
    report_adaptation(args.report_to, adapter.record, name, Path("runs") / "adapt")
    record = adapter.record
    if args.continue_:  # what this update did
        latest = record.updates[-1]
        fit, seconds, found = latest.fit, latest.seconds, latest.fit.warnings
    else:
        fit, seconds, found = record.fit, record.seconds, record.warnings
    print(
        json.dumps(
            {
                "name": name,
                "kind": adapter.spec.kind,
                "scenario": adapter.spec.name,
                "init": record.init,
                "steps": fit.steps_run,
                "steps_kept": fit.steps_kept,
                "seconds": seconds,
                "metrics": fit.metrics,
            },
            indent=2,
        )
    )
    for message in found:
        print(f"warning: {message}", file=sys.stderr)
    if args.examples_needed_for is not None:
        print(record.examples_needed["note"])
    print(f'saved {path}\ntry it: shoplora predict {name} "your text" --store {store.root}')


def _labels(text: str | None) -> list[str] | None:
    """--labels split at its commas; a comma that leaves an empty label, or a label given twice, is an error naming
    it: guessing which labels were meant would train on the wrong set."""
    if text is None:
        return None
    labels = [label.strip() for label in text.split(",")]
    for number, label in enumerate(labels, start=1):
        if not label:
            where = (
                "nothing was given"
                if len(labels) == 1
                else "a comma at the start"
                if number == 1
                else "a comma at the end"
                if number == len(labels)
                else "two commas in a row"
            )
            raise ShopLoRAError(
                f"--labels: label {number} of {len(labels)} is empty ({where}); separate the labels "
                "with single commas, e.g. --labels refund,exchange,other (or leave --labels out to "
                "take them from the data)"
            )
    twice = next((label for label, count in Counter(labels).items() if count > 1), None)
    if twice is not None:
        raise ShopLoRAError(
            f"--labels lists {twice!r} {labels.count(twice)} times (labels "
            f"{_positions(labels, twice)}); give each label once"
        )
    return labels


def _positions(labels: list[str], label: str) -> str:
    return " and ".join(str(number) for number, other in enumerate(labels, start=1) if other == label)


MIN_INPUT_TOKENS = 64  # prompt room a short customer message and its label need beside the label list


def _check_labels_fit(base, instruction: str, labels: list[str]) -> None:
    """The label list is part of every prompt (the system turn): refuse one that leaves no room for an input, saying
    that the list is the problem, before adapt blames the first input for being too long."""
    from prompts import TaskSpec
    from prompts.render import prompt_ids

    context = getattr(base.model.config, "max_position_embeddings", None)
    if not context or len(labels) < 2:
        return
    with_labels = len(
        prompt_ids(TaskSpec("custom", "custom", "classify", instruction, labels=tuple(labels)), "", base.tokenizer)
    )
    if with_labels + MIN_INPUT_TOKENS <= context:
        return
    without = len(prompt_ids(TaskSpec("custom", "custom", "generate", instruction), "", base.tokenizer))
    raise ShopLoRAError(
        f"--labels is too long: the list of {len(labels)} labels takes {with_labels - without} tokens "
        f"of every prompt ({with_labels} with the instruction), and {base.model_id} reads at most "
        f"{context} tokens, with at least {MIN_INPUT_TOKENS} needed for the input; use fewer labels "
        "(e.g. group rare ones under 'other', or split the task in two) or a base model with a longer "
        "context (--model)"
    )


def _default_name(data: str) -> str:
    """The adapter name the data file's name gives ('Returns 2024.jsonl' -> 'returns-2024'); one that is not a valid
    name is an error suggesting --name, not a failure that blames a name the user never typed."""
    from adapters.files import check_name

    name = Path(data).stem.lower().replace(" ", "-")
    try:
        return check_name(name)
    except ShopLoRAError:
        suggestion = re.sub(r"\.{2,}", ".", re.sub(r"[^a-z0-9._]+", "-", name)).strip("-._")[:64].rstrip("-._")
        suggestion = suggestion if NAME_PATTERN.match(suggestion) else "my-adapter"
        raise ShopLoRAError(
            f"the data file's name gives the adapter name {name!r}, which is not allowed (use 1-64 "
            "lowercase letters, digits, '.', '_' or '-', starting with a letter or digit); pass "
            f"--name, e.g. --name {suggestion}"
        ) from None


def _continue(args: argparse.Namespace, store, labels, columns):
    """`adapt DATA --continue NAME`: more examples for the stored adapter's scenario (replaying earlier ones), or
    with --instruction and --scenario a new scenario with weights of its own (--shared-weights: replay instead)."""
    from adapters import load_adapter, load_base

    store.read(args.continue_)  # an unknown name fails here, before the base model loads
    if args.instruction and not args.scenario:
        raise ShopLoRAError("--instruction with --continue starts a new scenario: name it with --scenario")
    if args.examples_needed_for is not None:
        raise ShopLoRAError("--examples-needed-for goes with a new adapter, not --continue")
    if args.shared_weights and not args.instruction:
        raise ShopLoRAError("--shared-weights is for a new scenario: pass --instruction and --scenario too")
    adapter = load_adapter(args.continue_, store=store, base=load_base(args.model) if args.model else None)
    return adapter.update(
        args.data,
        labels=labels,
        instruction=args.instruction,
        scenario=args.scenario,
        own_weights=False if args.shared_weights else None,
        kind=args.kind,
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        columns=columns,
    )


def add_parser(commands: argparse._SubParsersAction, default_store: str, store_help: str) -> None:
    adapt_ = commands.add_parser("adapt", help="learn a task from a JSONL/CSV of examples and save it to the store")
    adapt_.add_argument("data", help="JSONL or CSV with input and output columns")
    adapt_.add_argument("--instruction", help="what the model should do (the system turn); required unless --continue")
    adapt_.add_argument("--labels", help="comma-separated label set for classify tasks (default: inferred)")
    adapt_.add_argument("--kind", choices=["classify", "extract", "generate"], help="task kind (default: inferred)")
    adapt_.add_argument(
        "--init",
        default="default",
        help="init to start from: a path, a shipped init's name, or none (default: the shipped default init)",
    )
    adapt_.add_argument("--name", help="adapter name in the store (default: the data file's name)")
    adapt_.add_argument("--store", default=default_store, help=store_help)
    adapt_.add_argument("--overwrite", action="store_true", help="replace a stored adapter of the same name")
    adapt_.add_argument(
        "--continue",
        dest="continue_",
        metavar="NAME",
        help="update stored adapter NAME with DATA (replaying what it learned before) instead of starting a new one",
    )
    adapt_.add_argument(
        "--scenario",
        help="the task's name inside the adapter (default: custom); with --continue and "
        "--instruction, the new scenario's name",
    )
    adapt_.add_argument(
        "--shared-weights",
        action="store_true",
        help="with --continue and a new scenario: train the adapter's shared weights with replay "
        "(one LoRA in all, some forgetting) instead of a copy of its own for the new scenario",
    )
    adapt_.add_argument(
        "--examples-needed-for",
        type=float,
        metavar="ACCURACY",
        help="also estimate how many examples reach this held-out accuracy, e.g. 0.8 (classify, "
        ">= 32 examples; two more short adaptations on subsets)",
    )
    adapt_.add_argument(
        "--calibration",
        choices=list(CALIBRATION),
        default="auto",
        help="contextual calibration of classify labels (divides out the labels' prior on content-free "
        "inputs); auto: when some label has no example (default)",
    )
    adapt_.add_argument(
        "--steps",
        type=int,
        help="training steps, run exactly (default: the recipe's budget, 8 epochs over the examples, 24 to 96 steps)",
    )
    adapt_.add_argument("--lr", type=float, help="learning rate (default: the recipe's, 5e-4)")
    adapt_.add_argument(
        "--keep",
        choices=["best", "last"],
        default="best",
        help="weights kept: best = the checked step (the start among them) with the best held-out "
        "accuracy, never worse than the start (default); last = the last step's",
    )
    adapt_.add_argument("--seed", type=int, default=0)
    adapt_.add_argument(
        "--report-to",
        default="none",
        metavar="TRACKER",
        help="log the training loss and held-out "
        "metrics to tensorboard | wandb | mlflow | none (default none; TensorBoard: runs/adapt/NAME)",
    )
    adapt_.add_argument("--input-column", help="name of the input column in DATA (default: input)")
    adapt_.add_argument("--output-column", help="name of the output column in DATA (default: output)")
    adapt_.add_argument("--model", help="base model: hub id or directory (default: the embedded model)")
    adapt_.set_defaults(run=_adapt)
