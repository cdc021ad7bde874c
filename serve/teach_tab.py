"""The lab's Teach tab: a new scenario from a name, an instruction, labels and a handful of examples (typed, filled in
from an example set, or uploaded), adapted with a progress bar and a loss plot, then saved to the store."""

from __future__ import annotations

import threading
from typing import Any, Callable

import gradio as gr

from adapters.recipe import DEFAULT_RECIPE
from adapters.specs import CALIBRATION, task_spec
from prompts import ShopLoRAError

from .engine import Engine
from .events import shown
from .lab_common import DROPDOWN, PRIVATE, AdapterLists
from .teach_examples import EXAMPLE_SETS, EXAMPLES_DIR, file_rows, teach_rows
from .teach_report import UPDATE_EVERY, TeachProgress, teach_summary
from .uploads import uploaded


class TeachTab:
    """The Teach tab's components, built inside the caller's `gr.Tab`; `wire(lists)` connects its events (a teach
    refreshes `lists`). It reads only files uploaded through the page, of at most `max_upload_bytes`, and removes them
    afterwards."""

    def __init__(self, engine: Engine, max_upload_bytes: int) -> None:
        self.engine, self.max_upload_bytes = engine, max_upload_bytes
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
        gr.Markdown(
            "Give the scenario a name and an instruction, list its labels for a classify task, and "
            "add examples: type rows, or upload a JSONL/CSV file with `input` and `output` columns "
            "(its rows fill the table, to check and edit before adapting). With 16 or more examples "
            "a fifth (one of each label that has two) is held out to measure accuracy before and "
            "after."
        )
        with gr.Row():
            self.fills = {
                key: gr.Button(f"Example: {example.title}", size="sm", elem_id=f"teach-example-{key}")
                for key, example in EXAMPLE_SETS.items()
            }
        with gr.Row():
            self.name = gr.Textbox(label="Name", placeholder="acme-returns", elem_id="teach-name")
            self.labels = gr.Textbox(
                label="Labels (comma-separated; empty for free-text answers)", scale=2, elem_id="teach-labels"
            )
        self.instruction = gr.Textbox(
            label="Instruction",
            lines=2,
            elem_id="teach-instruction",
            placeholder="Classify the customer's message.",
        )
        with gr.Row():
            self.table = gr.Dataframe(
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
                self.upload = gr.File(
                    label="…or upload examples (.jsonl / .csv): they fill the table",
                    file_types=[".jsonl", ".csv"],
                    elem_id="teach-upload",
                )
                self.upload_note = gr.Markdown(elem_id="teach-upload-note")
        with gr.Accordion("Advanced", open=False, elem_id="teach-advanced"):
            with gr.Row():
                self.init = gr.Dropdown(
                    init_choices,
                    value=inits[0],
                    label="Start from (init)",
                    info="The served init unless you choose another; none: PEFT's standard LoRA init",
                    elem_id="teach-init",
                    **DROPDOWN,
                )
                self.calibration = gr.Dropdown(
                    list(CALIBRATION),
                    value="auto",
                    label="Contextual calibration",
                    info="auto: on when some label has no example",
                    elem_id="teach-calibration",
                    **DROPDOWN,
                )
            with gr.Row():
                self.epochs = gr.Number(
                    DEFAULT_RECIPE.epochs,
                    precision=0,
                    label="Epochs over the examples",
                    info=f"{DEFAULT_RECIPE.min_steps} to {DEFAULT_RECIPE.max_steps} steps of "
                    f"{DEFAULT_RECIPE.batch_size}",
                    elem_id="teach-epochs",
                )
                self.steps = gr.Number(
                    0,
                    precision=0,
                    label="Steps",
                    info="0: from the epochs; else this many (fewer when the held-out part stops improving)",
                    elem_id="teach-steps",
                )
                self.learning_rate = gr.Number(DEFAULT_RECIPE.lr, label="Learning rate", elem_id="teach-lr")
        with gr.Row():
            self.overwrite = gr.Checkbox(label="Overwrite an adapter of the same name")
            self.adapt = gr.Button("Adapt", variant="primary", elem_id="teach-adapt")
        with gr.Row():
            self.result = gr.Markdown(
                "Adapting shows its progress here, then what the adapter learned.",
                label="Result",
                min_height=110,
                elem_id="teach-result",
            )
            self.loss_plot = gr.LinePlot(
                x="step",
                y="loss",
                label="Training loss",
                title="Training loss",
                visible=False,
                height=260,
                elem_id="teach-loss",
            )

    def fill(self, key: str) -> Callable:
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

    def on_preview(self, file: str | None, labels: str):
        """An uploaded file's rows into the table (the file is then removed): what will be adapted on is what the
        table shows. Empty labels are filled in when the answers look like labels."""
        with uploaded(file, self.max_upload_bytes) as path:
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
        self,
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
        # adapts on a worker thread while the page shows its progress; then the summary and the refreshed lists
        label_set = [label.strip() for label in (labels or "").split(",") if label.strip()]
        with uploaded(file, self.max_upload_bytes) as path:  # read now: the upload is removed before training
            rows = teach_rows(examples, path)
            if path is not None:
                rows = file_rows(path, path.name, label_set)
        live = TeachProgress()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = self.engine.teach(
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
                    progress=live.progress,
                    phase=live.on_phase,
                )
            except BaseException as error:  # raised in the page's thread below
                outcome["error"] = error
            finally:
                live.changed.set()

        worker = threading.Thread(target=work, name="shoplora-teach", daemon=True)
        worker.start()
        skip = [gr.skip()] * len(self.lists.components)
        while worker.is_alive():
            for text in live.updates():
                yield text, live.plot(), *skip
            live.changed.wait(UPDATE_EVERY)
            live.changed.clear()
        worker.join()
        for text in live.updates():
            yield text, live.plot(), *skip
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        yield teach_summary(result), live.plot(), *self.lists.update(result["name"], result["name"])

    def wire(self, lists: AdapterLists) -> None:
        self.lists = lists  # what a teach refreshes: its outputs after the result and the loss plot
        fields = [self.name, self.instruction, self.labels, self.table, self.upload, self.upload_note]
        for key, button in self.fills.items():
            button.click(self.fill(key), None, fields, **PRIVATE)
        self.upload.upload(
            shown(self.on_preview, "preview"),
            [self.upload, self.labels],
            [self.table, self.upload, self.upload_note, self.labels],
            **PRIVATE,
        )
        self.adapt.click(
            shown(self.on_teach),
            [
                self.name,
                self.instruction,
                self.labels,
                self.table,
                self.upload,
                self.overwrite,
                self.init,
                self.epochs,
                self.steps,
                self.learning_rate,
                self.calibration,
            ],
            [self.result, self.loss_plot, *lists.components],
            api_name="teach",
            show_progress="hidden",
        )
