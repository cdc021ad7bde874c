"""What a chat request names and says, and what comes back: the served names, the engine's errors, `AdapterInfo`,
`Reply`, OpenAI-style messages parsed into a task's shots and input, and the prompt that fits the model's context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters import Base, Prediction
from prompts import Example, ShopLoRAError, TaskSpec
from prompts.render import prompt_ids

BASE = "base"
META_INIT = "meta-init"
STANDARD_INIT = "none"  # PEFT's standard LoRA init, as the CLI's --init none
CHAT_INSTRUCTION = (
    "You are a helpful customer-service assistant for an online shop. Answer the customer briefly and politely."
)
MAX_MESSAGE_CHARS = 8000  # per message: far past any support message, and well inside the embedded model's context
ROLES = ("system", "developer", "user", "assistant")
SYSTEM_ROLES = ("system", "developer")  # OpenAI's newer name for the system turn: the same thing here


class EngineError(ShopLoRAError):
    """A request the engine cannot serve as asked (bad messages, unknown adapter...): the message says why."""


class UnknownAdapter(EngineError):
    """No adapter of that name in the store (nor base / meta-init)."""


class EngineBusy(EngineError):
    """Too many requests are waiting; the caller should try again shortly."""


@dataclass(frozen=True)
class AdapterInfo:
    """What a served name is: its kind, label set and instruction (the system turn it was trained with)."""

    name: str
    kind: str
    instruction: str
    labels: tuple[str, ...] = ()
    init: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "instruction": self.instruction,
            "labels": list(self.labels),
            "init": self.init,
        }

    def task_spec(self) -> TaskSpec:
        """The task a request to this adapter is rendered as."""
        return TaskSpec("served", "custom", self.kind, self.instruction, labels=self.labels)


@dataclass
class Reply:
    """A finished answer: `text`, the `prediction` of a classify adapter, and token counts for usage reports."""

    text: str
    adapter: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "length" when the answer hit max_new_tokens
    prediction: Prediction | None = None


def chat_spec(system: str | None = None) -> TaskSpec:
    """The task spec of free chat with the base model or the meta init: the request's system message, else a shop
    assistant's instruction."""
    return TaskSpec("chat", "custom", "generate", (system or "").strip() or CHAT_INSTRUCTION)


def parse_messages(messages: Any) -> tuple[str | None, list[Example], str]:
    """(system text, earlier user/assistant exchanges, the last user message) of OpenAI-style chat messages.

    Content may be a string or a list of {"type": "text", "text": ...} parts; consecutive messages of one role are
    joined. The conversation must end with a user message."""
    if not isinstance(messages, list) or not messages:
        raise EngineError('\'messages\' must be a non-empty list of {"role": ..., "content": ...} objects')
    system: list[str] = []
    turns: list[list[str]] = []  # [role, text] with roles alternating
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise EngineError(f"message {number} must be an object with 'role' and 'content'")
        role, text = message["role"], _content_text(message["content"], number)
        if role not in ROLES:
            raise EngineError(f"message {number} has role {role!r}; use one of {', '.join(ROLES)}")
        if len(text) > MAX_MESSAGE_CHARS:
            raise EngineError(
                f"message {number} has {len(text)} characters, over the limit of {MAX_MESSAGE_CHARS}; shorten it"
            )
        if role in SYSTEM_ROLES:
            if turns:
                raise EngineError(f"message {number}: a system message must come before the conversation")
            system.append(text)
        elif turns and turns[-1][0] == role:
            turns[-1][1] += "\n\n" + text
        else:
            turns.append([role, text])
    if not turns or turns[-1][0] != "user":
        raise EngineError("the last message must be the user's: it is what the model answers")
    if not turns[-1][1].strip():
        raise EngineError("the last user message is empty; say something to answer")
    if turns[0][0] == "assistant":  # an opening greeting by the assistant has no user turn to pair with
        turns = turns[1:]
    shots = [Example(user, assistant) for (_, user), (_, assistant) in zip(turns[0:-1:2], turns[1:-1:2])]
    return ("\n\n".join(system) or None), shots, turns[-1][1]


def _content_text(content: Any, number: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise EngineError(f"message {number}: 'content' must be a string or a list of text parts")


def fit_prompt(base: Base, spec: TaskSpec, text: str, shots: list[Example], max_new_tokens: int) -> list[int]:
    """The rendered prompt; the oldest exchanges are dropped when the conversation would not fit the context."""
    context = getattr(base.model.config, "max_position_embeddings", None) or 2048
    while True:
        prompt = prompt_ids(spec, text, base.tokenizer, shots)
        if len(prompt) + max_new_tokens <= context or not shots:
            break
        shots = shots[1:]
    if len(prompt) + max_new_tokens > context:
        raise EngineError(
            f"the message is {len(prompt)} tokens with its prompt; with {max_new_tokens} for the "
            f"answer that is over the model's context of {context}: shorten it"
        )
    return prompt
