"""The lab's Discover tab: upload traffic, see clusters of the messages an adapter is unsure about (sizes, typical
messages, proposed labels), accept clusters as new labels, teach them (adapters.discover).

`discover_tab(engine)` builds the components inside the current `gr.Tab` and wires them; `find` and `teach_accepted`
do the work and are what the tests call.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from adapters.discover import DEFAULT_ABSTAIN, Discovery, check_traffic, discover, load_traffic, teach
from prompts import ShopLoRAError

from .engine import BASE, META_INIT, Engine
from .events import shown
from .uploads import MAX_UPLOAD_BYTES, uploaded

HEADERS = ["input", "output", "cluster"]


def classify_adapters(engine: Engine) -> list[str]:
    """The stored classify adapters; a broken one (half written, corrupted) is left out here: the chat says why."""
    names = []
    for name in engine.names():
        if name in (BASE, META_INIT):
            continue
        try:
            if engine.describe(name).kind == "classify":
                names.append(name)
        except ShopLoRAError:
            continue
    return names


def find(
    engine: Engine, name: str | None, upload: str | None, abstain_below: float, max_upload_bytes: int = MAX_UPLOAD_BYTES
) -> tuple[str, list[list[Any]], list[str], list[str]]:
    """(clusters as Markdown, proposal rows [input, output, cluster], cluster choices, the traffic's texts)."""
    if not name:
        raise ShopLoRAError("choose a classify adapter first (teach one in the Teach tab)")
    with uploaded(upload, max_upload_bytes) as file:
        if file is None:
            raise ShopLoRAError(
                "upload a traffic file first: JSONL or CSV, one customer message a row "
                "(an 'input', 'text' or 'message' column; 'timestamp' optional)"
            )
        try:
            texts, times = load_traffic(file)
        except ShopLoRAError as error:  # name the file the user chose, not the server's temp copy
            raise ShopLoRAError(str(error).replace(str(file), file.name)) from None
    check_traffic(texts)
    with engine.slot(), engine.base.lock:  # one user of the model; the adapter stays loaded while it is used
        found = discover(engine.adapter(name), texts, timestamps=times, abstain_below=abstain_below)
    rows = [[row["input"], row["output"], row["cluster"] + 1] for row in found.proposals()]
    return clusters_markdown(found), rows, cluster_choices(found), texts


def cluster_choices(found: Discovery) -> list[str]:
    return [f"{number}. {c.label} ({c.size})" for number, c in enumerate(found.clusters, start=1)]


def clusters_markdown(found: Discovery) -> str:
    lines = [
        f"**{found.n_unsure} of {found.n_messages} messages unsure** (confidence below "
        f"{100 * found.abstain_below:.0f}%), grouped by {found.method}. Each cluster's label is the base "
        "model's proposal: rename it in the table's `output` column, delete rows that do not belong, tick the "
        "clusters to accept and teach them."
    ]
    for number, c in enumerate(found.clusters, start=1):
        guess = f"; the adapter's best guess: `{c.adapter_guess}`" if c.adapter_guess else ""
        lines += ["", f"### {number}. `{c.label}`: {c.size} messages ({100 * c.share:.0f}%){guess}"]
        lines += [f"- {text[:160]}" for text in c.typical]
        if c.timeline:
            lines.append(
                "\nShare of all traffic over time: "
                + ", ".join(f"{row['period']} **{100 * row['share']:.0f}%**" for row in c.timeline[-8:])
            )
    return "\n".join(lines)


def accepted_examples(rows: Any, accepted: list[str]) -> list[dict]:
    """The (edited) table rows of the ticked clusters as examples."""
    chosen = {int(choice.split(".")[0]) for choice in accepted or []}
    if not chosen:
        raise ShopLoRAError("tick at least one cluster to accept")
    rows = rows.values.tolist() if hasattr(rows, "values") else (rows or [])
    examples = []
    for row in rows:
        if len(row) < 3 or not str(row[0] or "").strip():
            continue
        try:
            number = int(float(row[2]))
        except (TypeError, ValueError):
            continue
        if number in chosen:
            label = str(row[1] or "").strip()
            if not label:
                raise ShopLoRAError(f"a row of cluster {number} has no label; give it one or delete the row")
            examples.append({"input": str(row[0]).strip(), "output": label})
    if len(examples) < 2:
        raise ShopLoRAError("the accepted clusters hold fewer than 2 rows; accept more, or keep more rows")
    return examples


def teach_accepted(
    engine: Engine, name: str | None, rows: Any, accepted: list[str], texts: list[str], progress: Any = None
) -> str:
    """Update stored adapter `name` with the accepted clusters' rows, save it, and describe the result."""
    if not name:
        raise ShopLoRAError("choose the adapter to teach")
    examples = accepted_examples(rows, accepted)
    with engine.slot():
        adapter = engine.store.load(name, engine.base)  # a copy of its own: a failure leaves the served one as it was
        try:
            report = teach(adapter, examples, traffic=texts or (), progress=progress)
            engine.store.save(adapter, name, overwrite=True)  # the engine reloads it: its folder changed
        finally:
            adapter.unload()
    return teach_markdown(name, report)


def teach_markdown(name: str, report: dict) -> str:
    lines = [
        f"Taught **{name}** {len(report['new_labels'])} new label(s): "
        f"{', '.join(f'`{label}`' for label in report['new_labels']) or 'none'}, from {report['n_train']} "
        "examples. Saved; the Chat tab answers with it now.",
        "",
    ]
    held = report.get("held_out", {})
    if held:
        lines += ["| held-out examples | accuracy |", "|---|---|"]
        lines += [
            f"| {kind.replace('_', ' ')} ({part['n']}) | {100 * part['accuracy']:.0f}% |" for kind, part in held.items()
        ]
    else:
        lines.append("No held-out accuracy: with fewer than 16 examples none are held out.")
    kept = report.get("old_answers_kept")
    if kept:
        lines.append(
            f"\nOf the {kept['n']} messages the adapter was sure about, {100 * kept['share']:.1f}% keep their "
            "label after teaching (old labels are not forgotten when this is near 100%)."
        )
    return "\n".join(lines)


def discover_tab(engine: Engine, *, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """The Discover tab's components and events, built inside the caller's `gr.Tab` (and `gr.Blocks`)."""
    gr.Markdown(
        "Upload a day or a week of customer messages. The messages the chosen adapter is unsure about are "
        "grouped into clusters, each with a proposed label: accept the new needs and teach them."
    )
    with gr.Row():
        adapter = gr.Dropdown(
            classify_adapters(engine), label="Adapter (classify)", scale=2, elem_id="discover-adapter"
        )
        abstain = gr.Slider(0.05, 1.0, value=DEFAULT_ABSTAIN, step=0.05, scale=2, label="Unsure below this confidence")
    with gr.Row():
        traffic = gr.File(label="Traffic (.jsonl / .csv)", file_types=[".jsonl", ".csv"], elem_id="discover-upload")
        go = gr.Button("Find new needs", variant="primary", elem_id="discover-go")
    found = gr.Markdown(elem_id="discover-clusters")
    table = gr.Dataframe(
        headers=HEADERS,
        type="array",
        column_count=3,
        interactive=True,
        wrap=True,
        label="Proposed examples (edit the output to rename a label; delete rows that do not belong)",
        max_height=300,
        elem_id="discover-table",
    )
    accept = gr.CheckboxGroup([], label="Accept these clusters as labels", elem_id="discover-accept")
    teach_button = gr.Button("Teach the accepted clusters", variant="primary", elem_id="discover-teach")
    result = gr.Markdown(elem_id="discover-result")
    texts = gr.State([])

    @shown
    def on_find(name: str, upload: str | None, abstain_below: float):
        markdown, rows, choices, traffic_texts = find(engine, name, upload, abstain_below, max_upload_bytes)
        return markdown, rows, gr.CheckboxGroup(choices=choices, value=[]), traffic_texts

    @shown
    def on_teach(name: str, rows: Any, accepted: list[str], traffic_texts: list[str], progress=gr.Progress()):
        def report(step: int, total: int, loss: float) -> None:
            progress((step, total), desc=f"teaching: loss {loss:.3f}", unit="steps")

        return teach_accepted(engine, name, rows, accepted, traffic_texts, progress=report)

    @shown
    def on_load():
        return gr.Dropdown(choices=classify_adapters(engine))

    go.click(on_find, [adapter, traffic, abstain], [found, table, accept, texts], api_name="discover")
    teach_button.click(on_teach, [adapter, table, accept, texts], result, api_name="discover_teach")
    gr.on([adapter.focus], on_load, None, adapter, api_visibility="private")
