"""The lab's Chat tab: talk to a chosen adapter as a customer would; a classify adapter answers with its label and
how confident it is, and hands over to a human below a chosen confidence."""

from __future__ import annotations

from typing import Any

import gradio as gr

from prompts import ShopLoRAError

from .engine import BASE, Engine
from .events import shown
from .lab_common import DROPDOWN, PRIVATE, describe, verdict

DEFAULT_ABSTAIN = 0.3


def _text(content: Any) -> str:
    """The text of a chat message's content (gradio 6 gives a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


class ChatTab:
    """The Chat tab's components, built inside the caller's `gr.Tab`; `wire()` connects its events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with gr.Row():
            self.model = gr.Dropdown(engine.names(), value=BASE, label="Scenario (adapter)", scale=3, **DROPDOWN)
            self.abstain = gr.Slider(
                0.0,
                1.0,
                value=DEFAULT_ABSTAIN,
                step=0.05,
                scale=2,
                label="Hand over to a human below this confidence (classify adapters)",
            )
        self.info = gr.Markdown(describe(engine, BASE), label="About the scenario")
        with gr.Row():
            self.chatbot = gr.Chatbot(label="Conversation", height=340, feedback_options=None, scale=3)
            self.confidences = gr.Label(
                label="Confidence (latest message)",
                num_top_classes=5,
                visible=False,
                scale=1,
                elem_id="chat-confidence",
            )
        with gr.Row():
            self.message = gr.Textbox(
                placeholder="Write as a customer would, e.g. where is my parcel??",
                label="Message",
                show_label=False,
                scale=5,
                elem_id="chat-message",
            )
            self.send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
        self.clear = gr.Button("Clear conversation", size="sm")

    def on_model(self, model: str) -> tuple[str, Any]:
        return describe(self.engine, model), gr.Label(visible=False)

    def on_send(self, text: str, history: list, model: str, abstain_below: float):
        if not (text or "").strip():
            raise ShopLoRAError("type a message first")
        history = [{"role": m["role"], "content": _text(m["content"])} for m in history or []]
        history.append({"role": "user", "content": text})
        info = self.engine.describe(model)
        if info.kind == "classify":
            prediction = self.engine.classify([text], info.name, abstain_below=abstain_below or None)[0]
            history.append({"role": "assistant", "content": verdict(prediction, abstain_below or None)})
            yield history, "", gr.Label(value=prediction.scores, visible=True)
            return
        answer = ""
        history.append({"role": "assistant", "content": ""})
        for piece in self.engine.generate(history[:-1], info.name, stream=True):
            answer += piece
            history[-1] = {"role": "assistant", "content": answer}
            yield history, "", gr.Label(visible=False)
        if not answer.strip():
            history[-1] = {"role": "assistant", "content": "(no answer)"}
            yield history, "", gr.Label(visible=False)

    def wire(self) -> None:
        self.model.change(
            shown(self.on_model, "describe"), self.model, [self.info, self.confidences], api_name="describe"
        )
        inputs, outputs = (
            [self.message, self.chatbot, self.model, self.abstain],
            [self.chatbot, self.message, self.confidences],
        )
        self.send.click(shown(self.on_send, "chat"), inputs, outputs, api_name="chat")
        self.message.submit(shown(self.on_send, "chat"), inputs, outputs, **PRIVATE)
        self.clear.click(lambda: ([], gr.Label(visible=False)), None, [self.chatbot, self.confidences], **PRIVATE)
