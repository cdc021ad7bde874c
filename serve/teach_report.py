"""What the Teach tab shows while adapting (`TeachProgress`: the phase in words, a bar, the loss plot) and after
(`teach_summary`: steps, held-out accuracy before and after, warnings)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Iterator

import gradio as gr

from adapters.recipe import HELD_OUT_SHARE

from .lab_common import percent

FEW_HELD_OUT = 20  # held-out examples below which the Teach tab says its accuracy is a rough check
UPDATE_EVERY = 0.5  # seconds between two updates of the Teach tab while training (a phase change shows at once)


def _count(accuracy: float | None, n: int) -> str:
    """ "25% (1 of 4)": with a handful of held-out examples the count says more than the percentage."""
    return "n/a" if accuracy is None else f"{percent(accuracy)} ({round(accuracy * n)} of {n})"


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
        """The LinePlot's update: the loss at every step so far, on an x axis as long as the run. Before the first
        step it is emptied, not hidden: hiding a plot Gradio has drawn throws in its front end (see below)."""
        import pandas as pd

        if not self.losses:
            # Gradio's plot (6.x) adds a ResizeObserver each time it redraws and disconnects only the last; hiding it
            # removes its element, and the others then read `null.offsetWidth` ("Cannot read properties of null").
            # So the plot is shown once, at the first loss, and never hidden: a later teach empties it.
            return gr.LinePlot(pd.DataFrame({"step": [], "loss": []}))
        steps, losses = zip(*self.losses)
        return gr.LinePlot(
            pd.DataFrame({"step": list(steps), "loss": list(losses)}), x_lim=[1, max(self.planned, 2)], visible=True
        )
