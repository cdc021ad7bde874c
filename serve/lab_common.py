"""What the lab's tabs share: the lists of adapters they offer (kept fresh together) and how a model and a
prediction are described."""

from __future__ import annotations

from typing import Any

import gradio as gr

from adapters import ABSTAIN, Prediction

from .engine import BASE, META_INIT, Engine

# Choices are read when the page loads and after every teach or delete; a name typed in (or sent by gradio_client)
# that is not among them is checked by the engine, so adapters taught since the page was built work too. (The Numbers
# have no bounds of Gradio's either: the engine's checks name the field and the fix. Gradio's own checks, such as a
# Slider's range, are one line in the log too: `serve.events.LabBlocks`.)
DROPDOWN = {"allow_custom_value": True, "filterable": True}
PRIVATE = {"api_visibility": "private"}  # an event gradio_client does not list: the page's own plumbing
KEEP = object()  # an `AdapterLists.update` argument left out: that dropdown keeps its value


def stored_names(names: list[str]) -> list[str]:
    """The served `names` without base and meta-init: the adapters in the store."""
    return [name for name in names if name not in (BASE, META_INIT)]


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


class AdapterLists:
    """The components that list the adapters, in the Chat, Compare and Adapters tabs, and the Adapters table: what a
    teach or a delete changes, refreshed together."""

    def __init__(self, engine: Engine, chat: Any, compare: Any, manage: Any, table: Any) -> None:
        self.engine = engine
        self.components = [chat, compare, manage, table]

    def update(self, chat: Any = KEEP, compare: Any = KEEP, manage: Any = KEEP) -> list[Any]:
        """Fresh choices for the three adapter dropdowns (a new value only where given) and the Adapters table."""
        names = self.engine.names()
        stored = stored_names(names)

        def dropdown(options: list[str], value: Any) -> Any:
            return gr.Dropdown(choices=options) if value is KEEP else gr.Dropdown(choices=options, value=value)

        return [dropdown(names, chat), dropdown(stored, compare), dropdown(stored, manage), stored_table(self.engine)]

    def refresh(self) -> list[Any]:
        return self.update()


def percent(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


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
            f"Handing over to a human: confidence {percent(prediction.confidence)} is below "
            f"{percent(abstain_below)} (best guess: {prediction.best_label})."
        )
    return f"Intent: **{prediction.label}** ({percent(prediction.confidence)} confident)."
