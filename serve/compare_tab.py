"""The lab's Compare tab: one customer message answered by the base model, the init new scenarios start from and an
adapted scenario, all asked the scenario's task."""

from __future__ import annotations

import gradio as gr

from .engine import BASE, META_INIT, Engine
from .events import shown
from .lab_common import DROPDOWN, stored_names, verdict


class CompareTab:
    """The Compare tab's components, built inside the caller's `gr.Tab`; `wire()` connects its event."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        gr.Markdown(
            "One customer message, answered by the base model, the init new scenarios start from "
            "and an adapted scenario, all asked the scenario's task."
        )
        stored = stored_names(engine.names())
        with gr.Row():
            self.model = gr.Dropdown(
                stored,
                value=(stored or [None])[0],
                label="Adapted scenario",
                scale=2,
                **DROPDOWN,
            )
            self.text = gr.Textbox(label="Customer message", scale=4, elem_id="compare-text")
            self.go = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-go")
        self.columns = []
        with gr.Row():
            for title, key in (
                ("Base model", "base"),
                ("Init (before adapting)", "init"),
                ("Adapted", "adapted"),
            ):
                with gr.Column():
                    self.columns.append(
                        (
                            gr.Markdown(f"### {title}"),
                            gr.Markdown(label=f"{key} answer"),
                            gr.Label(visible=False, show_label=False, num_top_classes=4, label=f"{key} confidence"),
                        )
                    )

    def on_compare(self, text: str, model: str | None):
        answers = self.engine.compare(text, model or None)
        out = []
        for key in (BASE, META_INIT, model):
            value = answers.get(key, "(choose an adapted scenario; teach one first)" if key == model else "")
            if hasattr(value, "scores"):
                out += [verdict(value, None), gr.Label(value=value.scores, visible=True)]
            else:
                out += [value or "(empty answer)", gr.Label(visible=False)]
        return out

    def wire(self) -> None:
        self.go.click(
            shown(self.on_compare),
            [self.text, self.model],
            [part for column in self.columns for part in column[1:]],
            api_name="compare",
        )
