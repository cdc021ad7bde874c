"""The Gradio customer-service lab, a thin view over `Engine`: Chat, Teach a scenario, Compare.

`build_app(engine)` returns the `gr.Blocks`; `server_app` mounts it with the OpenAI-style routes on one FastAPI app;
`serve` runs that with uvicorn (what `shoplora serve` calls). Every error a user can cause is shown in the page as a
message, never as a traceback.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
import socket
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline tool: no usage pings

import gradio as gr  # noqa: E402

from adapters import ABSTAIN, Prediction  # noqa: E402
from adapters.recipe import HELD_OUT_SHARE  # noqa: E402
from prompts import ShopLoRAError, suite  # noqa: E402
from prompts.suite import Task  # noqa: E402

from .engine import BASE, META_INIT, Engine  # noqa: E402
from .uploads import MAX_FILE_SIZE, MAX_UPLOAD_BYTES, uploaded  # noqa: E402

log = logging.getLogger(__name__)

TITLE = "ShopLoRA customer-service lab"
EXAMPLE_TASK = "service-intent-petshop"  # a held-out scenario: meta-training never saw these intents
EXAMPLE_K = 24
DEFAULT_ABSTAIN = 0.3
FEW_HELD_OUT = 20  # held-out examples below which the Teach tab says its accuracy is a rough check


def _shown(fn: Callable) -> Callable:
    """Turn every error of `fn` into a message in the page (gr.Error); unexpected ones are logged here in full."""

    def message(error: Exception) -> gr.Error:
        if isinstance(error, ShopLoRAError):
            return gr.Error(str(error))
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"unexpected {type(error).__name__}: {error} (the server log has the details)")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as error:
                raise message(error) from None

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:
            raise message(error) from None

    return call


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
    """"25% (1 of 4)": with a handful of held-out examples the count says more than the percentage."""
    return "n/a" if accuracy is None else f"{_percent(accuracy)} ({round(accuracy * n)} of {n})"


def describe(engine: Engine, name: str | None) -> str:
    """One line under the dropdown: what the chosen model is."""
    info = engine.describe(name)
    if info.name == BASE:
        return "**base**: the base model with no adapter, as a shop assistant."
    if info.name == META_INIT:
        return f"**meta-init**: the LoRA init new scenarios start from (`{info.init}`), before any adaptation."
    labels = f" Labels: {', '.join(f'`{label}`' for label in info.labels)}." if info.labels else ""
    return f"**{info.name}** ({info.kind}, from {info.init} init): {info.instruction}{labels}"


def verdict(prediction: Prediction, abstain_below: float | None) -> str:
    """The assistant's line for a classify adapter's prediction."""
    if prediction.label == ABSTAIN:
        return (f"Handing over to a human: confidence {_percent(prediction.confidence)} is below "
                f"{_percent(abstain_below)} (best guess: {prediction.text}).")
    return f"Intent: **{prediction.label}** ({_percent(prediction.confidence)} confident)."


def teach_rows(table: Any, upload: Path | None) -> Any:
    """The examples to adapt on: a checked upload's path (see serve.uploads), or the table's non-empty rows."""
    if upload:
        return upload
    rows = table.values.tolist() if hasattr(table, "values") else (table or [])
    examples = [{"input": str(row[0] or "").strip(), "output": str(row[1] or "").strip()}
                for row in rows if len(row) >= 2 and any(str(cell or "").strip() for cell in row[:2])]
    if not examples:
        raise ShopLoRAError("no examples: type some rows in the table (input, output) or upload a JSONL/CSV file")
    return examples


def example_rows(task: Task, k: int) -> list[list[str]]:
    """k (input, output) rows of the task's training examples taking every label in turn, so that each label has an
    example: adapting teaches the adapter never to predict a label it saw no example of."""
    rank: Counter[str] = Counter()
    keyed = []
    for index, example in enumerate(task.examples("train")):
        keyed.append((rank[example.output], index, example))
        rank[example.output] += 1
    return [[e.input, e.output] for _, _, e in sorted(keyed, key=lambda item: item[:2])[:k]]


def teach_summary(result: dict) -> str:
    metrics = result["metrics"]
    kept = result.get("steps_kept", result["steps"])
    weights = ("" if kept == result["steps"] else " the starting weights kept, as they did best on the held-out "
               "examples;" if kept == 0 else f" the weights of step {kept} kept, the best on the held-out examples;")
    lines = [f"Saved **{result['name']}** ({result['kind']}, from the {result['init']} init): {result['steps']} "
             f"steps in {result['seconds']:.1f} s on {result['n_train']} examples;{weights} it is in the Chat and "
             "Compare lists now.", ""]
    if "held_out_accuracy" in metrics:
        n = result["n_held_out"]
        lines += ["| held-out examples | accuracy before | accuracy after |", "|---|---|---|",
                  f"| {n} | {_count(metrics.get('held_out_accuracy_before'), n)} | "
                  f"{_count(metrics['held_out_accuracy'], n)} |"]
        if n < FEW_HELD_OUT:
            lines.append(f"\nOn {n} held-out examples one answer moves accuracy by {100 / n:.0f} points: a rough "
                         f"check, not a measurement. From {round(FEW_HELD_OUT / HELD_OUT_SHARE)} examples, "
                         f"{FEW_HELD_OUT} are held out.")
    elif "held_out_token_f1" in metrics:
        lines.append(f"Held-out token F1 after adapting: {metrics['held_out_token_f1']:.2f} "
                     f"({result['n_held_out']} examples).")
    else:
        lines.append("No accuracy before/after: with fewer than 16 examples none are held out to measure it.")
    warned = result.get("warnings", [])
    lines += [f'\n<span style="color: #b91c1c">**Warning:** {message}.</span>' for message in warned]
    per_label = metrics.get("held_out_per_label")
    if per_label and any("held-out" in message for message in warned):
        lines += ["", "| label | held-out examples | right before | right after | answered after |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{label}` | {row['n']} | {row['right_before']} | {row['right_after']} | {row['answered']} |"
                  for label, row in per_label.items()]
    return "\n".join(lines)


def build_app(engine: Engine, *, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> gr.Blocks:
    """The lab's page: Chat, Teach a scenario, Compare. Launching is separate (`server_app`, `serve`). Teach reads
    only files uploaded through the page, of at most `max_upload_bytes`, and removes them afterwards."""
    example = suite.get_task(EXAMPLE_TASK)

    def choices(with_base: bool = True) -> list[str]:
        names = engine.names()
        return names if with_base else [n for n in names if n not in (BASE, META_INIT)]

    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}\nTalk to a shop's support scenarios, teach a new one from a handful of examples, and "
                    f"compare the base model, the init new scenarios start from and an adapted scenario. Model: "
                    f"`{engine.base.model_id}` on {engine.base.device}.")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    chat_model = gr.Dropdown(choices(), value=BASE, label="Scenario (adapter)", scale=3)
                    abstain = gr.Slider(0.0, 1.0, value=DEFAULT_ABSTAIN, step=0.05, scale=2,
                                        label="Hand over to a human below this confidence (classify adapters)")
                chat_info = gr.Markdown(describe(engine, BASE))
                chatbot = gr.Chatbot(label="Conversation", height=340, feedback_options=None)
                with gr.Row():
                    message = gr.Textbox(placeholder="Write as a customer would, e.g. where is my parcel??",
                                         show_label=False, scale=5, elem_id="chat-message")
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
                confidences = gr.Label(label="Label confidence", num_top_classes=5, visible=False)
                clear = gr.Button("Clear conversation", size="sm")
            with gr.Tab("Teach a scenario", id="teach"):
                gr.Markdown("Give the scenario a name and an instruction, list its labels for a classify task, and "
                            "add examples: type rows or upload a JSONL/CSV file with `input` and `output` columns. "
                            "With 16 or more examples a fifth (one of each label that has two) is held out to "
                            "measure accuracy before and after.")
                with gr.Row():
                    name = gr.Textbox(label="Name", placeholder="acme-returns", elem_id="teach-name")
                    labels = gr.Textbox(label="Labels (comma-separated; empty for free-text answers)", scale=2,
                                        elem_id="teach-labels")
                instruction = gr.Textbox(label="Instruction", lines=2, elem_id="teach-instruction",
                                         placeholder="Classify the customer's message.")
                table = gr.Dataframe(headers=["input", "output"], type="array", row_count=4, column_count=2,
                                     column_widths=["70%", "30%"], interactive=True, wrap=True,
                                     label="Examples",
                                     max_height=300, elem_id="teach-table")
                with gr.Row():
                    upload = gr.File(label="…or upload examples (.jsonl / .csv)", file_types=[".jsonl", ".csv"],
                                     elem_id="teach-upload")
                    with gr.Column():
                        overwrite = gr.Checkbox(label="Overwrite an adapter of the same name")
                        fill = gr.Button(f"Fill in an example: pet-shop intents ({EXAMPLE_K} examples)", size="sm",
                                         elem_id="teach-example")
                        teach = gr.Button("Adapt", variant="primary", elem_id="teach-adapt")
                teach_result = gr.Markdown("Adapting shows its progress here, then what the adapter learned.",
                                           min_height=110, elem_id="teach-result")
            with gr.Tab("Compare", id="compare"):
                gr.Markdown("One customer message, answered by the base model, the init new scenarios start from "
                            "and an adapted scenario, all asked the scenario's task.")
                with gr.Row():
                    compare_model = gr.Dropdown(choices(False), value=(choices(False) or [None])[0],
                                                label="Adapted scenario", scale=2)
                    compare_text = gr.Textbox(label="Customer message", scale=4, elem_id="compare-text")
                    compare_go = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-go")
                columns = []
                with gr.Row():
                    for title in ("Base model", "Init (before adapting)", "Adapted"):
                        with gr.Column():
                            columns.append((gr.Markdown(f"### {title}"), gr.Markdown(), gr.Label(visible=False,
                                                                                                  show_label=False,
                                                                                                  num_top_classes=4)))
            with gr.Tab("Discover", id="discover"):
                from .discover_tab import discover_tab

                discover_tab(engine, max_upload_bytes=max_upload_bytes)

        @_shown
        def on_model(model: str) -> tuple[str, Any]:
            return describe(engine, model), gr.Label(visible=False)

        @_shown
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

        @_shown
        def on_fill():
            rows = example_rows(example, EXAMPLE_K)
            return "petshop-intents", example.spec.instruction, ", ".join(example.spec.labels), rows

        @_shown
        def on_teach(name_: str, instruction_: str, labels_: str, table_: Any, upload_: str | None,
                     overwrite_: bool, progress=gr.Progress()):
            with uploaded(upload_, max_upload_bytes) as file:
                examples = teach_rows(table_, file)
                label_set = [label.strip() for label in (labels_ or "").split(",") if label.strip()]
                progress(0.0, desc="starting")

                def report(step: int, total: int, loss: float) -> None:
                    progress((step, total), desc=f"adapting: loss {loss:.3f}", unit="steps")

                try:
                    result = engine.teach((name_ or "").strip(), examples, instruction=instruction_,
                                          labels=label_set, overwrite=overwrite_, progress=report)
                except ShopLoRAError as error:
                    if file:  # name the file the user chose, not the server's temp copy
                        raise ShopLoRAError(str(error).replace(str(file), file.name)) from None
                    raise
            names = engine.names()
            return (teach_summary(result), gr.Dropdown(choices=names, value=result["name"]),
                    gr.Dropdown(choices=[n for n in names if n not in (BASE, META_INIT)], value=result["name"]))

        @_shown
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

        @_shown
        def on_load():
            names = engine.names()
            stored = [n for n in names if n not in (BASE, META_INIT)]
            return gr.Dropdown(choices=names), gr.Dropdown(choices=stored, value=stored[0] if stored else None)

        def list_adapters() -> list[dict]:
            """Every served name with its kind, labels and instruction."""
            return [engine.describe(name).to_dict() for name in engine.names()]

        private = {"api_visibility": "private"}
        chat_model.change(on_model, chat_model, [chat_info, confidences], api_name="describe")
        chat_inputs, chat_outputs = [message, chatbot, chat_model, abstain], [chatbot, message, confidences]
        send.click(on_send, chat_inputs, chat_outputs, api_name="chat")
        message.submit(on_send, chat_inputs, chat_outputs, **private)
        clear.click(lambda: ([], gr.Label(visible=False)), None, [chatbot, confidences], **private)
        fill.click(on_fill, None, [name, instruction, labels, table], **private)
        teach.click(on_teach, [name, instruction, labels, table, upload, overwrite],
                    [teach_result, chat_model, compare_model], api_name="teach")
        compare_go.click(on_compare, [compare_text, compare_model],
                         [part for column in columns for part in column[1:]], api_name="compare")
        app.load(on_load, None, [chat_model, compare_model], **private)
        gr.api(_shown(list_adapters), api_name="adapters")
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
            password.encode(), auth[1].encode())
        (throttle.succeeded if ok else throttle.failed)(username)
        return ok

    return check


def server_app(engine: Engine, *, auth: tuple[str, str] | None = None, max_file_size: str | int = MAX_FILE_SIZE,
               concurrency: int = 4) -> Any:
    """One FastAPI app: the OpenAI-style /v1 routes and the lab at /. `concurrency` bounds the lab's events that run
    at once (the engine serialises model work anyway); the queue holds as many as the engine lets wait."""
    from fastapi import FastAPI

    from .api import openai_router

    from gradio.utils import _parse_file_size

    server = FastAPI(title="ShopLoRA", docs_url=None, redoc_url=None)
    server.include_router(openai_router(engine, auth=auth))  # before the mount: "/" would otherwise take /v1 too
    blocks = build_app(engine, max_upload_bytes=_parse_file_size(max_file_size)).queue(
        default_concurrency_limit=concurrency, max_size=engine.max_pending)
    server = gr.mount_gradio_app(server, blocks, path="/", auth=lab_login(auth) if auth else None,
                                 max_file_size=max_file_size, show_error=True,
                                 footer_links=["api"], run_history=False, ssr_mode=False, theme=gr.themes.Soft())
    # Gradio checks that a file argument was uploaded (and copies nothing else into its cache) only for Blocks that
    # it launched itself; a mounted app skips the check, so a request naming /etc/... would have the file copied
    # and read. Marking the Blocks launched turns the check on; `serve.uploads` checks again before reading.
    blocks.has_launched = True
    return server


def serve(engine: Engine, *, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
          max_file_size: str | int = MAX_FILE_SIZE) -> None:
    """Run the lab and the API until interrupted (127.0.0.1 unless another host is asked for)."""
    import uvicorn

    sock = listening_socket(host, port)  # before the URL is printed: a port in use is an error, not a dead link
    try:
        app = server_app(engine, auth=auth, max_file_size=max_file_size)
        print(f"ShopLoRA lab on http://{host}:{port}/  (OpenAI-style API at http://{host}:{port}/v1)", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C is how the server is stopped, as with uvicorn.run
        pass
    finally:
        sock.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` for the server, or a ShopLoRAError saying why it cannot be (the port is in
    use, needs root, or the host is not this machine's). `check_port` asks the same before a model loads."""
    try:
        family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as error:
        raise ShopLoRAError(f"cannot listen on --host {host!r} ({error}); pass an address of this machine, e.g. "
                            "--host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every network)") from None
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
        return (f"port {port} on {host} is already in use (another `shoplora serve`, or another program); stop it, "
                f"or pass another port, e.g. --port {port + 1 if port < 65535 else 7860}")
    if code == errno.EACCES:
        return f"not allowed to listen on port {port} (ports below 1024 need root); pass --port 7860 or above 1023"
    if code == errno.EADDRNOTAVAIL:
        return (f"{host} is not an address of this machine; pass --host 127.0.0.1 (this machine only) or "
                "--host 0.0.0.0 (every network)")
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
