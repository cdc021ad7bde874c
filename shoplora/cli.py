"""`shoplora` subcommands. Each parses its arguments and calls the library; errors become one-line messages."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections import Counter
from pathlib import Path

from adapters.specs import CALIBRATION  # names only: importing it loads no torch
from adapters.inits import check_init_exists
from prompts import ShopLoRAError, suite
from prompts.errors import exit_code
from prompts.spec import NAME_PATTERN
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


def _store(args: argparse.Namespace):
    from adapters import AdapterStore

    return AdapterStore(args.store)


def _adapt(args: argparse.Namespace) -> None:
    from adapters import adapt, load_base
    from adapters.fit import AdaptationWarning
    from adapters.specs import LabelCoverageWarning
    from adapters.files import check_name
    from adapters.trackers import check_report_to, report_adaptation

    check_report_to(args.report_to, "--report-to")  # a missing package fails now, not after training
    store = _store(args)
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
                contextual_calibration=CALIBRATION[args.calibration],
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


def _predict(args: argparse.Namespace) -> None:
    from adapters import load_adapter, load_base
    from prompts import load_inputs

    store = _store(args)
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
    store = _store(args)
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


def _compare(args: argparse.Namespace) -> None:
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
    from train.evaluate import REPORT, load_eval_config, run

    config = load_eval_config(args.config, args.overrides)
    results = run(config)
    output_dir = Path(config.output_dir)
    print((output_dir / REPORT).read_text())
    print(f"wrote {output_dir}/results.json, {REPORT} and the plots score_vs_*.png")
    saved = results["saved_adapter"]
    if saved:
        store = saved["store"]
        print(
            f"\nsaved the {saved['method']} adapter of {saved['task']} (k={saved['k']}, seed 0) as "
            f"{saved['name']!r} in {store}:\n"
            f'  CLI:    shoplora predict {saved["name"]} "your customer\'s message" --store {store}\n'
            f"  Python: from adapters import AdapterStore, load_adapter\n"
            f"          adapter = load_adapter({saved['name']!r}, store=AdapterStore({store!r}))\n"
            f'          adapter.predict(["your customer\'s message"])\n'
            f"  UI:     shoplora serve --store {store}   (the Gradio lab and an OpenAI-style API)"
        )


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
    from adapters import load_base
    from adapters.inits import trained_base_settings
    from serve.server import check_port, serve
    from serve.engine import Engine

    auth = _serve_auth(args)
    store = _store(args)
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


def _meta_train(args: argparse.Namespace) -> None:
    from train.meta import main as meta_main

    code = meta_main([args.config, *args.overrides])
    if code:
        raise SystemExit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoplora", description="Meta-learned LoRA inits for few-shot e-commerce tasks."
    )
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

    store_help = "adapter store folder (default: $SHOPLORA_STORE or ./adapters_store)"
    default_store = os.environ.get("SHOPLORA_STORE", "adapters_store")
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
    compare_.set_defaults(run=_compare)

    eval_ = commands.add_parser(
        "eval",
        help="the evaluation benchmark: methods x k x seeds on held-out and your "
        "tasks; results.json, results.md, plots",
        epilog="config fields: configs/eval/quick.yaml lists every one with its meaning",
    )
    eval_.add_argument("config", help="YAML config, e.g. configs/eval/quick.yaml")
    eval_.add_argument("overrides", nargs="*", metavar="key=value", help="config fields to override, e.g. seeds=2")
    eval_.set_defaults(run=_eval)

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

    meta = commands.add_parser("meta-train", help="meta-train a LoRA init (one process; see train.meta)")
    meta.add_argument("config", help="YAML run config, e.g. configs/embedded.yaml")
    meta.add_argument("overrides", nargs="*", help="key=value overrides of config fields")
    meta.set_defaults(run=_meta_train)

    from . import chat_cmd, export_cmd  # commands in modules of their own

    export_cmd.add_parser(commands, default_store, store_help)
    chat_cmd.add_parser(commands, default_store, store_help)
    from . import discover_cmd

    discover_cmd.add_parser(commands, default_store, store_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "action", None) in ("show", "delete") and not args.name:
        parser.error(f"adapters {args.action} needs a NAME")
    return exit_code(lambda: args.run(args))
