"""The Gradio customer-service lab, a thin view over `Engine`: Chat, Teach a scenario, Compare, Adapters.

`build_app(engine)` returns the `gr.Blocks`; `server_app` mounts it with the OpenAI-style routes on one FastAPI app;
`serve` runs that with uvicorn (what `shoplora serve` calls). Every error a user can cause is shown in the page as a
message, never as a traceback, and is one line in the server log.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import warnings
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline tool: no usage pings

import gradio as gr  # noqa: E402

from adapters import ABSTAIN, Prediction  # noqa: E402
from adapters.fit import AdaptationWarning  # noqa: E402
from adapters.specs import CALIBRATION, LabelCoverageWarning, task_spec  # noqa: E402
from adapters.recipe import DEFAULT_RECIPE, HELD_OUT_SHARE  # noqa: E402
from prompts import Example, ShopLoRAError, load_examples, suite  # noqa: E402
from prompts.suite import Task  # noqa: E402

from .engine import BASE, META_INIT, Engine  # noqa: E402
from .events import shown  # noqa: E402
from .uploads import MAX_FILE_SIZE, MAX_UPLOAD_BYTES, uploaded  # noqa: E402

log = logging.getLogger(__name__)

TITLE = "ShopLoRA customer-service lab"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"  # the repository's example files
DEFAULT_ABSTAIN = 0.3
FEW_HELD_OUT = 20  # held-out examples below which the Teach tab says its accuracy is a rough check
MAX_TABLE_ROWS = 2000  # examples the Teach table takes from a file: more is a job for `shoplora adapt`
UPDATE_EVERY = 0.5  # seconds between two updates of the Teach tab while training (a phase change shows at once)
DOWNLOADS_KEPT = 300  # seconds a prepared zip stays in the lab's temp folder (Gradio serves its own copy)


@dataclass(frozen=True)
class ExampleSet:
    """An example dataset the Teach tab fills in: a file of examples/ with its task."""

    title: str
    name: str
    instruction: str
    labels: tuple[str, ...]
    file: str


def _held_out_spec(task: str) -> tuple[str, tuple[str, ...]]:
    spec = suite.get_task(task).spec
    return spec.instruction, spec.labels


EXAMPLE_SETS = {  # held-out scenarios: meta-training never saw these labels
    "returns": ExampleSet(
        "Returns & refunds",
        "acme-returns",
        "Classify the customer's message.",
        ("refund_status", "return_item", "damaged_item", "where_is_my_order"),
        "refunds.jsonl",
    ),
    "petshop": ExampleSet(
        "Pet-shop intents", "petshop-intents", *_held_out_spec("service-intent-petshop"), "petshop.jsonl"
    ),
    "reviews": ExampleSet(
        "Furniture review aspects",
        "furniture-aspects",
        *_held_out_spec("reviews-aspect-furniture"),
        "review_aspects.jsonl",
    ),
}


def _text(content: Any) -> str:
    """The text of a chat message's content (gradio 6 gives a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _percent(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _count(accuracy: float | None, n: int) -> str:
    """ "25% (1 of 4)": with a handful of held-out examples the count says more than the percentage."""
    return "n/a" if accuracy is None else f"{_percent(accuracy)} ({round(accuracy * n)} of {n})"


def describe(engine: Engine, name: str | None) -> str:
    """One line under the dropdown: what the chosen model is, and whether it reads the conversation."""
    info = engine.describe(name)
    if info.name == BASE:
        return "**base**: the base model with no adapter, as a shop assistant. It answers with the conversation so far."
    if info.name == META_INIT:
        return (
            f"**meta-init**: the LoRA init new scenarios start from (`{info.init}`), before any adaptation. It "
            "answers with the conversation so far."
        )
    labels = f" Labels: {', '.join(f'`{label}`' for label in info.labels)}." if info.labels else ""
    reads = (
        " Each message is classified on its own: the earlier conversation is not used."
        if info.kind == "classify"
        else " It answers with the conversation so far."
    )
    return f"**{info.name}** ({info.kind}, from {info.init} init): {info.instruction}{labels}{reads}"


def verdict(prediction: Prediction, abstain_below: float | None) -> str:
    """The assistant's line for a classify adapter's prediction."""
    if prediction.label == ABSTAIN:
        return (
            f"Handing over to a human: confidence {_percent(prediction.confidence)} is below "
            f"{_percent(abstain_below)} (best guess: {prediction.text})."
        )
    return f"Intent: **{prediction.label}** ({_percent(prediction.confidence)} confident)."


def table_examples(table: Any) -> list[dict]:
    """The table's non-empty (input, output) rows."""
    rows = table.values.tolist() if hasattr(table, "to_numpy") else (table or [])  # type="array": a list
    return [
        {"input": str(row[0] or "").strip(), "output": str(row[1] or "").strip()}
        for row in rows
        if len(row) >= 2 and any(str(cell or "").strip() for cell in row[:2])
    ]


def teach_rows(table: Any, upload: Path | None) -> Any:
    """The examples to adapt on: the table's non-empty rows, or a checked upload's path (see serve.uploads); both at
    once is refused rather than one silently winning."""
    examples = table_examples(table)
    if upload and examples:
        raise ShopLoRAError(
            f"examples both in the table ({len(examples)} rows) and in the file {upload.name}: clear "
            "the table, or leave out the file (uploading in the page puts its rows in the table)"
        )
    if upload:
        return upload
    if not examples:
        raise ShopLoRAError("no examples: type some rows in the table (input, output) or upload a JSONL/CSV file")
    return examples


def file_rows(path: Path, shown_name: str, labels: list[str] | None = None) -> list[Example]:
    """The examples of a JSONL/CSV file, checked as `adapt` checks them; errors name `shown_name`, not the server's
    copy."""
    try:
        examples = load_examples(path, labels=labels or None)
    except ShopLoRAError as error:
        raise ShopLoRAError(str(error).replace(str(path), shown_name)) from None
    if len(examples) > MAX_TABLE_ROWS:
        raise ShopLoRAError(
            f"{shown_name} has {len(examples)} examples, over the lab's {MAX_TABLE_ROWS}; adapt from "
            f"the command line: shoplora adapt {shown_name} --instruction ..."
        )
    return examples


def example_rows(task: Task, k: int) -> list[list[str]]:
    """k (input, output) rows of the task's training examples taking every label in turn, so that each label has an
    example: adapting teaches the adapter never to predict a label it saw no example of. (How examples/petshop.jsonl
    and examples/review_aspects.jsonl were made.)"""
    rank: Counter[str] = Counter()
    keyed = []
    for index, example in enumerate(task.examples("train")):
        keyed.append((rank[example.output], index, example))
        rank[example.output] += 1
    return [[e.input, e.output] for _, _, e in sorted(keyed, key=lambda item: item[:2])[:k]]


def teach_summary(result: dict) -> str:
    metrics = result["metrics"]
    kept = result.get("steps_kept", result["steps"])
    weights = (
        ""
        if kept == result["steps"]
        else " the starting weights kept, as they did best on the held-out examples;"
        if kept == 0
        else f" the weights of step {kept} kept, the best on the held-out examples;"
    )
    planned = result.get("steps_planned", result["steps"])
    steps = f"{result['steps']}" if planned == result["steps"] else f"{result['steps']} of {planned}"
    lines = [
        f"Saved **{result['name']}** ({result['kind']}, from the {result['init']} init): {steps} "
        f"steps in {result['seconds']:.1f} s on {result['n_train']} examples;{weights} it is in the Chat and "
        "Compare lists now.",
        "",
    ]
    if "held_out_accuracy" in metrics:
        n = result["n_held_out"]
        lines += [
            "| held-out examples | accuracy before | accuracy after |",
            "|---|---|---|",
            f"| {n} | {_count(metrics.get('held_out_accuracy_before'), n)} | "
            f"{_count(metrics['held_out_accuracy'], n)} |",
        ]
        if n < FEW_HELD_OUT:
            lines.append(
                f"\nOn {n} held-out examples one answer moves accuracy by {100 / n:.0f} points: a rough "
                f"check, not a measurement. From {round(FEW_HELD_OUT / HELD_OUT_SHARE)} examples, "
                f"{FEW_HELD_OUT} are held out."
            )
    elif "held_out_token_f1" in metrics:
        lines.append(
            f"Held-out token F1 after adapting: {metrics['held_out_token_f1']:.2f} ({result['n_held_out']} examples)."
        )
    else:
        lines.append("No accuracy before/after: with fewer than 16 examples none are held out to measure it.")
    warned = result.get("warnings", [])
    lines += [f'\n<span style="color: #b91c1c">**Warning:** {message}.</span>' for message in warned]
    per_label = metrics.get("held_out_per_label")
    if per_label and any("held-out" in message for message in warned):
        lines += [
            "",
            "| label | held-out examples | right before | right after | answered after |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{label}` | {row['n']} | {row['right_before']} | {row['right_after']} | {row['answered']} |"
            for label, row in per_label.items()
        ]
    return "\n".join(lines)


class TeachProgress:
    """What the Teach tab shows while adapting: the phase in words and the training loss so far. `progress` and
    `phase` are the callbacks `Engine.teach` takes; they run on the training thread, `text()` and `losses` are read
    on another."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.losses: list[tuple[int, float]] = []
        self.phase, self.step, self.steps = "reading", 0, 0
        self.planned = 0  # training steps of the run (early stopping may end it sooner)
        self.changed = threading.Event()  # set on a new phase (shown at once; steps are shown every UPDATE_EVERY s)
        # Each new phase's text, kept until shown: a phase shorter than one update (scoring after, saving) is still
        # shown, in order, instead of being overwritten by the next before the page reads it.
        self.entered: deque[str] = deque()

    def progress(self, step: int, steps: int, loss: float) -> None:
        self.losses.append((step, loss))
        self.planned = steps
        self._set("training", step, steps)

    def on_phase(self, phase: str, step: int, steps: int) -> None:
        self._set(phase, step, steps)

    def _set(self, phase: str, step: int, steps: int) -> None:
        new = phase != self.phase
        self.phase, self.step, self.steps = phase, step, steps
        if new:
            self.entered.append(self.text())
            self.changed.set()

    def updates(self) -> Iterator[str]:
        """The texts of the phases entered since the last call, then the current one."""
        while self.entered:
            yield self.entered.popleft()
        yield self.text()

    def text(self) -> str:
        step, steps = self.step, self.steps
        loss = f" · loss {self.losses[-1][1]:.3f}" if self.losses else ""
        said = {
            "reading": "Reading the examples",
            "scoring before": "Scoring before: the held-out examples with the starting weights",
            "training": f"Training: step {step} of {steps}{loss}",
            "scoring": f"Training: scoring the held-out examples after step {step} of {steps}{loss}",
            "refitting": f"Training again on every example for the {steps} steps chosen: step {step} of {steps}",
            "scoring after": "Scoring after: held-out accuracy and confidence calibration of the kept weights",
            "saving": "Saving the adapter to the store",
        }.get(self.phase, self.phase)
        share = step / steps if steps and self.phase in ("training", "scoring", "refitting") else None
        bar = (
            f'\n\n<div style="background:#e5e7eb;border-radius:4px;height:8px"><div style="background:#6366f1;'
            f'border-radius:4px;height:8px;width:{100 * share:.0f}%"></div></div>'
            if share is not None
            else ""
        )
        return f"**{said}** ({time.perf_counter() - self.started:.0f} s){bar}"

    def plot(self) -> Any:
        """The LinePlot's update: the loss at every step so far, on an x axis as long as the run."""
        import pandas as pd

        steps, losses = zip(*self.losses) if self.losses else ((), ())
        return gr.LinePlot(
            pd.DataFrame({"step": list(steps), "loss": list(losses)}),
            x_lim=[1, max(self.planned, 2)],
            visible=bool(self.losses),
        )


class Downloads:
    """A temp folder of the lab's own for adapter zips: each zip in a new subfolder (a name a request gives never
    becomes a path), removed once older than DOWNLOADS_KEPT seconds: Gradio serves its own copy."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="shoplora-downloads-"))
        import atexit

        atexit.register(shutil.rmtree, self.root, True)

    def folder(self) -> Path:
        for old in self.root.iterdir():
            if time.time() - old.stat().st_mtime > DOWNLOADS_KEPT:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.root))


def stored_table(engine: Engine) -> list[list[Any]]:
    """The Adapters tab's rows: one per stored adapter (a broken one with its problem)."""
    rows = []
    for row in engine.store.list():
        if "error" in row:
            rows.append([row["name"], "broken", "", "", "", row["error"]])
        else:
            rows.append(
                [
                    row["name"],
                    row["kind"],
                    row["labels"] or "",
                    row["examples"] or "",
                    row["init"] or "",
                    row["created"] or "",
                ]
            )
    return rows


def build_app(engine: Engine, *, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> gr.Blocks:
    """The lab's page: Chat, Teach a scenario, Compare, Adapters. Launching is separate (`server_app`, `serve`).
    Teach reads only files uploaded through the page, of at most `max_upload_bytes`, and removes them afterwards."""
    downloads = Downloads()

    def choices(with_base: bool = True) -> list[str]:
        names = engine.names()
        return names if with_base else [n for n in names if n not in (BASE, META_INIT)]

    inits = engine.inits()
    init_choices = [
        (
            f"{name} (the served init)"
            if i == 0 and engine.meta_init_available
            else "none (PEFT's standard init)"
            if name == "none"
            else name,
            name,
        )
        for i, name in enumerate(inits)
    ]
    # Choices are read when the page loads and after every teach or delete; a name typed in (or sent by gradio_client)
    # that is not among them is checked by the engine, so adapters taught since the page was built work too. (The
    # engine's checks are one line in the log; Gradio's own would print a traceback, so the Numbers have no bounds.)
    dropdown = {"allow_custom_value": True, "filterable": True}

    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            f"# {TITLE}\nTalk to a shop's support scenarios, teach a new one from a handful of examples, and "
            f"compare the base model, the init new scenarios start from and an adapted scenario. Model: "
            f"`{engine.base.model_id}` on {engine.base.device}. **API:** [docs](/docs) of the OpenAI-style "
            "`/v1` routes (`/v1/models`, `/v1/chat/completions`) and of this lab's own endpoints for "
            "`gradio_client` ([Use via API](?view=api))."
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    chat_model = gr.Dropdown(choices(), value=BASE, label="Scenario (adapter)", scale=3, **dropdown)
                    abstain = gr.Slider(
                        0.0,
                        1.0,
                        value=DEFAULT_ABSTAIN,
                        step=0.05,
                        scale=2,
                        label="Hand over to a human below this confidence (classify adapters)",
                    )
                chat_info = gr.Markdown(describe(engine, BASE), label="About the scenario")
                with gr.Row():
                    chatbot = gr.Chatbot(label="Conversation", height=340, feedback_options=None, scale=3)
                    confidences = gr.Label(
                        label="Confidence (latest message)",
                        num_top_classes=5,
                        visible=False,
                        scale=1,
                        elem_id="chat-confidence",
                    )
                with gr.Row():
                    message = gr.Textbox(
                        placeholder="Write as a customer would, e.g. where is my parcel??",
                        label="Message",
                        show_label=False,
                        scale=5,
                        elem_id="chat-message",
                    )
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
                clear = gr.Button("Clear conversation", size="sm")
            with gr.Tab("Teach a scenario", id="teach"):
                gr.Markdown(
                    "Give the scenario a name and an instruction, list its labels for a classify task, and "
                    "add examples: type rows, or upload a JSONL/CSV file with `input` and `output` columns "
                    "(its rows fill the table, to check and edit before adapting). With 16 or more examples "
                    "a fifth (one of each label that has two) is held out to measure accuracy before and "
                    "after."
                )
                with gr.Row():
                    fills = {
                        key: gr.Button(f"Example: {example.title}", size="sm", elem_id=f"teach-example-{key}")
                        for key, example in EXAMPLE_SETS.items()
                    }
                with gr.Row():
                    name = gr.Textbox(label="Name", placeholder="acme-returns", elem_id="teach-name")
                    labels = gr.Textbox(
                        label="Labels (comma-separated; empty for free-text answers)", scale=2, elem_id="teach-labels"
                    )
                instruction = gr.Textbox(
                    label="Instruction",
                    lines=2,
                    elem_id="teach-instruction",
                    placeholder="Classify the customer's message.",
                )
                with gr.Row():
                    table = gr.Dataframe(
                        headers=["input", "output"],
                        type="array",
                        row_count=4,
                        column_count=2,
                        column_widths=["70%", "30%"],
                        interactive=True,
                        wrap=True,
                        label="Examples",
                        max_height=300,
                        elem_id="teach-table",
                        scale=3,
                    )
                    with gr.Column(scale=1):
                        upload = gr.File(
                            label="…or upload examples (.jsonl / .csv): they fill the table",
                            file_types=[".jsonl", ".csv"],
                            elem_id="teach-upload",
                        )
                        upload_note = gr.Markdown(elem_id="teach-upload-note")
                with gr.Accordion("Advanced", open=False, elem_id="teach-advanced"):
                    with gr.Row():
                        init = gr.Dropdown(
                            init_choices,
                            value=inits[0],
                            label="Start from (init)",
                            info="The served init unless you choose another; none: PEFT's standard LoRA init",
                            elem_id="teach-init",
                            **dropdown,
                        )
                        calibration = gr.Dropdown(
                            list(CALIBRATION),
                            value="auto",
                            label="Contextual calibration",
                            info="auto: on when some label has no example",
                            elem_id="teach-calibration",
                            **dropdown,
                        )
                    with gr.Row():
                        epochs = gr.Number(
                            DEFAULT_RECIPE.epochs,
                            precision=0,
                            label="Epochs over the examples",
                            info=f"{DEFAULT_RECIPE.min_steps} to {DEFAULT_RECIPE.max_steps} steps of "
                            f"{DEFAULT_RECIPE.batch_size}",
                            elem_id="teach-epochs",
                        )
                        steps = gr.Number(
                            0,
                            precision=0,
                            label="Steps",
                            info="0: from the epochs; else this many (fewer when the held-out part stops improving)",
                            elem_id="teach-steps",
                        )
                        learning_rate = gr.Number(DEFAULT_RECIPE.lr, label="Learning rate", elem_id="teach-lr")
                with gr.Row():
                    overwrite = gr.Checkbox(label="Overwrite an adapter of the same name")
                    teach = gr.Button("Adapt", variant="primary", elem_id="teach-adapt")
                with gr.Row():
                    teach_result = gr.Markdown(
                        "Adapting shows its progress here, then what the adapter learned.",
                        label="Result",
                        min_height=110,
                        elem_id="teach-result",
                    )
                    loss_plot = gr.LinePlot(
                        x="step",
                        y="loss",
                        label="Training loss",
                        title="Training loss",
                        visible=False,
                        height=260,
                        elem_id="teach-loss",
                    )
            with gr.Tab("Compare", id="compare"):
                gr.Markdown(
                    "One customer message, answered by the base model, the init new scenarios start from "
                    "and an adapted scenario, all asked the scenario's task."
                )
                with gr.Row():
                    compare_model = gr.Dropdown(
                        choices(False),
                        value=(choices(False) or [None])[0],
                        label="Adapted scenario",
                        scale=2,
                        **dropdown,
                    )
                    compare_text = gr.Textbox(label="Customer message", scale=4, elem_id="compare-text")
                    compare_go = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-go")
                columns = []
                with gr.Row():
                    for title, key in (
                        ("Base model", "base"),
                        ("Init (before adapting)", "init"),
                        ("Adapted", "adapted"),
                    ):
                        with gr.Column():
                            columns.append(
                                (
                                    gr.Markdown(f"### {title}"),
                                    gr.Markdown(label=f"{key} answer"),
                                    gr.Label(
                                        visible=False, show_label=False, num_top_classes=4, label=f"{key} confidence"
                                    ),
                                )
                            )
            with gr.Tab("Adapters", id="adapters"):
                gr.Markdown(
                    f"The adapters in the store (`{engine.store.root}`). Choose one to download its folder "
                    "as a zip (the PEFT files, `shoplora.json` and the model card: `PeftModel.from_pretrained` "
                    "loads it) or to delete it."
                )
                stored = gr.Dataframe(
                    stored_table(engine),
                    headers=["name", "kind", "labels", "examples", "init", "created / problem"],
                    interactive=False,
                    label="Stored adapters",
                    elem_id="adapters-table",
                )
                with gr.Row():
                    manage_model = gr.Dropdown(
                        choices(False), value=None, label="Adapter", scale=2, elem_id="adapters-choice", **dropdown
                    )
                    download = gr.DownloadButton(
                        "Download .zip", interactive=False, scale=1, elem_id="adapters-download"
                    )
                    delete = gr.Button("Delete", variant="stop", interactive=False, scale=1, elem_id="adapters-delete")
                    refresh = gr.Button("Refresh", scale=1, elem_id="adapters-refresh")
                manage_info = gr.Markdown(label="About the adapter", elem_id="adapters-info")
                with gr.Row(visible=False) as confirm_row:
                    confirm_text = gr.Markdown()
                    confirm = gr.Button("Yes, delete it", variant="stop", elem_id="adapters-delete-confirm")
                    cancel = gr.Button("Cancel", elem_id="adapters-delete-cancel")
            with gr.Tab("Discover", id="discover"):
                from .discover_tab import discover_tab

                discover_tab(engine, max_upload_bytes=max_upload_bytes)

        keep = object()

        def lists(chat: Any = keep, compare: Any = keep, manage: Any = keep) -> list[Any]:
            """Fresh choices for the three adapter dropdowns (a new value only where given) and the Adapters
            table."""
            names = engine.names()
            stored_names = [n for n in names if n not in (BASE, META_INIT)]

            def update(options: list[str], value: Any) -> Any:
                return gr.Dropdown(choices=options) if value is keep else gr.Dropdown(choices=options, value=value)

            return [
                update(names, chat),
                update(stored_names, compare),
                update(stored_names, manage),
                stored_table(engine),
            ]

        def on_model(model: str) -> tuple[str, Any]:
            return describe(engine, model), gr.Label(visible=False)

        def on_send(text: str, history: list, model: str, abstain_below: float):
            if not (text or "").strip():
                raise ShopLoRAError("type a message first")
            history = [{"role": m["role"], "content": _text(m["content"])} for m in history or []]
            history.append({"role": "user", "content": text})
            info = engine.describe(model)
            if info.kind == "classify":
                prediction = engine.classify([text], info.name, abstain_below=abstain_below or None)[0]
                history.append({"role": "assistant", "content": verdict(prediction, abstain_below or None)})
                yield history, "", gr.Label(value=prediction.scores, visible=True)
                return
            answer = ""
            history.append({"role": "assistant", "content": ""})
            for piece in engine.generate(history[:-1], info.name, stream=True):
                answer += piece
                history[-1] = {"role": "assistant", "content": answer}
                yield history, "", gr.Label(visible=False)
            if not answer.strip():
                history[-1] = {"role": "assistant", "content": "(no answer)"}
                yield history, "", gr.Label(visible=False)

        def fill(key: str) -> Callable:
            example = EXAMPLE_SETS[key]

            def on_fill():
                path = EXAMPLES_DIR / example.file
                if not path.is_file():
                    raise ShopLoRAError(
                        f"the example file {example.file} is not here ({EXAMPLES_DIR}): it comes with "
                        "ShopLoRA's source checkout"
                    )
                rows = [[e.input, e.output] for e in file_rows(path, example.file, list(example.labels))]
                return example.name, example.instruction, ", ".join(example.labels), rows, None, ""

            return shown(on_fill, f"fill {key}")

        def on_preview(file: str | None, labels: str):
            """An uploaded file's rows into the table (the file is then removed): what will be adapted on is what
            the table shows. Empty labels are filled in when the answers look like labels."""
            with uploaded(file, max_upload_bytes) as path:
                if path is None:
                    return gr.skip(), None, "", gr.skip()
                examples = file_rows(path, path.name)
            rows = [[e.input, e.output] for e in examples]
            found = task_spec(examples, "-", None, None)
            guessed = not (labels or "").strip() and found.kind == "classify"
            note = (
                f"{len(rows)} examples from **{path.name}** are in the table"
                + (f"; labels taken from their answers: {len(found.labels)}" if guessed else "")
                + "."
            )
            return rows, None, note, ", ".join(found.labels) if guessed else gr.skip()

        def on_teach(
            name: str,
            instruction: str,
            labels: str,
            examples: Any,
            file: str | None,
            overwrite: bool,
            init: str,
            epochs: float | None,
            steps: float | None,
            learning_rate: float | None,
            calibration: str,
        ):
            label_set = [label.strip() for label in (labels or "").split(",") if label.strip()]
            with uploaded(file, max_upload_bytes) as path:  # read now: the upload is removed before training
                rows = teach_rows(examples, path)
                if path is not None:
                    rows = file_rows(path, path.name, label_set)
            shown = TeachProgress()
            outcome: dict[str, Any] = {}

            def work() -> None:
                try:
                    outcome["result"] = engine.teach(
                        (name or "").strip(),
                        rows,
                        instruction=instruction,
                        labels=label_set,
                        overwrite=overwrite,
                        init=init or None,
                        epochs=None if not epochs or epochs == DEFAULT_RECIPE.epochs else int(epochs),
                        steps=int(steps) if steps else None,
                        lr=None if not learning_rate or learning_rate == DEFAULT_RECIPE.lr else float(learning_rate),
                        calibration=calibration or "auto",
                        progress=shown.progress,
                        phase=shown.on_phase,
                    )
                except BaseException as error:  # raised in the page's thread below
                    outcome["error"] = error
                finally:
                    shown.changed.set()

            worker = threading.Thread(target=work, name="shoplora-teach", daemon=True)
            worker.start()
            skip = [gr.skip()] * 4
            while worker.is_alive():
                for text in shown.updates():
                    yield text, shown.plot(), *skip
                shown.changed.wait(UPDATE_EVERY)
                shown.changed.clear()
            worker.join()
            for text in shown.updates():
                yield text, shown.plot(), *skip
            if "error" in outcome:
                raise outcome["error"]
            result = outcome["result"]
            yield teach_summary(result), shown.plot(), *lists(result["name"], result["name"])

        def on_compare(text: str, model: str | None):
            answers = engine.compare(text, model or None)
            out = []
            for key in (BASE, META_INIT, model):
                value = answers.get(key, "(choose an adapted scenario; teach one first)" if key == model else "")
                if hasattr(value, "scores"):
                    out += [verdict(value, None), gr.Label(value=value.scores, visible=True)]
                else:
                    out += [value or "(empty answer)", gr.Label(visible=False)]
            return out

        def on_refresh():
            return lists()

        def on_pick(name: str | None):
            """The chosen adapter's folder as a zip for the download button, and what it is."""
            if not name:
                return (
                    gr.DownloadButton("Download .zip", value=None, interactive=False),
                    gr.Button(interactive=False),
                    gr.skip(),
                )
            zipped = engine.export_zip(name, downloads.folder())
            size = zipped.stat().st_size
            shown = f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"
            return (
                gr.DownloadButton(f"Download {name}.zip ({shown})", value=str(zipped), interactive=True),
                gr.Button(interactive=True),
                describe(engine, name),
            )

        def on_ask_delete(name: str | None):
            if not name:
                raise ShopLoRAError("choose an adapter to delete first")
            engine.describe(name)  # an unknown name is refused here, not after the confirmation
            return gr.Row(visible=True), f"Delete **{name}** and its earlier versions from the store for good?"

        def on_delete(name: str):
            engine.delete(name)  # a Chat tab still naming it is told so on its next message
            return f"Deleted **{name}**.", gr.Row(visible=False), *lists(compare=None, manage=None)

        def list_adapters() -> list[dict]:
            """Every served name with its kind, labels and instruction."""
            return [engine.describe(name).to_dict() for name in engine.names()]

        private = {"api_visibility": "private"}
        listed = [chat_model, compare_model, manage_model, stored]
        chat_model.change(shown(on_model, "describe"), chat_model, [chat_info, confidences], api_name="describe")
        chat_inputs, chat_outputs = [message, chatbot, chat_model, abstain], [chatbot, message, confidences]
        send.click(shown(on_send, "chat"), chat_inputs, chat_outputs, api_name="chat")
        message.submit(shown(on_send, "chat"), chat_inputs, chat_outputs, **private)
        clear.click(lambda: ([], gr.Label(visible=False)), None, [chatbot, confidences], **private)
        for key, button in fills.items():
            button.click(fill(key), None, [name, instruction, labels, table, upload, upload_note], **private)
        upload.upload(shown(on_preview, "preview"), [upload, labels], [table, upload, upload_note, labels], **private)
        teach.click(
            shown(on_teach),
            [name, instruction, labels, table, upload, overwrite, init, epochs, steps, learning_rate, calibration],
            [teach_result, loss_plot, *listed],
            api_name="teach",
            show_progress="hidden",
        )
        compare_go.click(
            shown(on_compare),
            [compare_text, compare_model],
            [part for column in columns for part in column[1:]],
            api_name="compare",
        )
        manage_model.change(
            shown(on_pick, "download"), manage_model, [download, delete, manage_info], api_name="download"
        )
        delete.click(shown(on_ask_delete, "delete?"), manage_model, [confirm_row, confirm_text], **private)
        cancel.click(lambda: gr.Row(visible=False), None, confirm_row, **private)
        confirm.click(shown(on_delete), manage_model, [manage_info, confirm_row, *listed], api_name="delete")
        refresh.click(shown(on_refresh, "refresh"), None, listed, **private)
        app.load(shown(on_refresh, "page"), None, listed, **private)
        gr.api(shown(list_adapters, "adapters"), api_name="adapters")
    return app


def lab_login(auth: tuple[str, str], throttle: Any = None) -> Callable[[str, str], bool]:
    """The lab page's login check: the --auth pair, compared in constant time, and after 5 failed tries for a user
    name within a minute that name is refused, right password or not, until the minute has passed (Gradio's login
    form does not tell who is asking, so the throttle goes by the name tried; the API's goes by address)."""
    import hmac

    from .api import LoginThrottle

    throttle = throttle or LoginThrottle()

    def check(username: str, password: str) -> bool:
        if throttle.retry_after(username) > 0:
            return False
        ok = hmac.compare_digest(username.encode(), auth[0].encode()) and hmac.compare_digest(
            password.encode(), auth[1].encode()
        )
        (throttle.succeeded if ok else throttle.failed)(username)
        return ok

    return check


def server_app(
    engine: Engine,
    *,
    auth: tuple[str, str] | None = None,
    max_file_size: str | int = MAX_FILE_SIZE,
    concurrency: int = 4,
) -> Any:
    """One FastAPI app: the OpenAI-style /v1 routes and the lab at /. `concurrency` bounds the lab's events that run
    at once (the engine serialises model work anyway); the queue holds as many as the engine lets wait."""
    from fastapi import FastAPI
    from gradio.utils import _parse_file_size

    from .api import api_docs, log_requests, openai_router

    # /docs is a page of our own: FastAPI's Swagger UI loads its scripts from a CDN, which an offline server lacks
    server = FastAPI(
        title="ShopLoRA", description="OpenAI-style routes over ShopLoRA's adapters", docs_url=None, redoc_url=None
    )
    server.include_router(openai_router(engine, auth=auth))  # before the mount: "/" would otherwise take /v1 too
    server.add_api_route("/docs", api_docs(server), include_in_schema=False)
    log_requests(server)
    blocks = build_app(engine, max_upload_bytes=_parse_file_size(max_file_size)).queue(
        default_concurrency_limit=concurrency, max_size=engine.max_pending
    )
    server = gr.mount_gradio_app(
        server,
        blocks,
        path="/",
        auth=lab_login(auth) if auth else None,
        max_file_size=max_file_size,
        show_error=True,
        footer_links=["api"],
        run_history=False,
        ssr_mode=False,
        theme=gr.themes.Soft(),
    )
    # Gradio checks that a file argument was uploaded (and copies nothing else into its cache) only for Blocks that
    # it launched itself; a mounted app skips the check, so a request naming /etc/... would have the file copied
    # and read. Marking the Blocks launched turns the check on; `serve.uploads` checks again before reading.
    blocks.has_launched = True
    return server


def serve(
    engine: Engine,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: tuple[str, str] | None = None,
    max_file_size: str | int = MAX_FILE_SIZE,
) -> None:
    """Run the lab and the API until interrupted (127.0.0.1 unless another host is asked for)."""
    import uvicorn

    sock = listening_socket(host, port)  # before the URL is printed: a port in use is an error, not a dead link
    try:
        app = server_app(engine, auth=auth, max_file_size=max_file_size)
        quiet_log()
        print(f"ShopLoRA lab on http://{host}:{port}/  (OpenAI-style API at http://{host}:{port}/v1)", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C is how the server is stopped, as with uvicorn.run
        pass
    finally:
        sock.close()


def quiet_log() -> None:
    """The server's log: one line per request on stderr (serve.api's /v1 lines, the lab's events), not Gradio's
    and uvicorn's chatter."""
    logger = logging.getLogger("serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    # what these warn about is in the Teach tab's answer (and the adapter's record), not news for the server's log
    warnings.filterwarnings("ignore", category=LabelCoverageWarning)
    warnings.filterwarnings("ignore", category=AdaptationWarning)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` for the server, or a ShopLoRAError saying why it cannot be (the port is in
    use, needs root, or the host is not this machine's). `check_port` asks the same before a model loads."""
    try:
        family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as error:
        raise ShopLoRAError(
            f"cannot listen on --host {host!r} ({error}); pass an address of this machine, e.g. "
            "--host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every network)"
        ) from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    if os.name != "nt":  # as uvicorn does: a port a stopped server left in TIME_WAIT is free (Windows would share it)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as error:
        sock.close()
        raise ShopLoRAError(_bind_problem(host, port, error)) from None
    return sock


def check_port(host: str, port: int) -> None:
    """Fail now, not after minutes of loading a model, when `serve` could not listen on `host`:`port`."""
    listening_socket(host, port).close()


def _bind_problem(host: str, port: int, error: Exception) -> str:
    code = getattr(error, "errno", None)
    if code == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another `shoplora serve`, or another program); stop it, "
            f"or pass another port, e.g. --port {port + 1 if port < 65535 else 7860}"
        )
    if code == errno.EACCES:
        return f"not allowed to listen on port {port} (ports below 1024 need root); pass --port 7860 or above 1023"
    if code == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine; pass --host 127.0.0.1 (this machine only) or "
            "--host 0.0.0.0 (every network)"
        )
    return f"cannot listen on {host}:{port} ({error}); pass another --host or --port (0-65535)"


@contextmanager
def running(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` (e.g. `server_app(engine)`) on a free port in a background thread; yields its URL. For tests and
    notebooks: `with running(server_app(engine)) as url: ...`."""
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread stopped before it started; see the log above")
            time.sleep(0.05)
        yield f"http://{host}:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
