"""The one place where a task and an example become chat messages and token ids.

Training, adaptation, in-context baselines, evaluation and serving all call these functions, so a model is always
asked the same way it was taught. The system turn is the instruction (plus the label list for classify tasks), the
user turn is the input, the assistant turn is the output; loss is on the assistant's tokens only.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Sequence

from .spec import Example, TaskSpec

IGNORE = -100  # label id that cross-entropy skips: prompt tokens carry no loss
_MARK = "\x00ANSWER\x00"
# tokenizer -> (the chat template the frame was read from, the frame); a changed template is read again
_frames: "weakref.WeakKeyDictionary[Any, tuple[str | None, tuple[str, str]]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Rendered:
    """Token ids of one prompt + answer, and labels equal to the ids on the answer and IGNORE elsewhere."""

    input_ids: list[int]
    labels: list[int]

    @property
    def prompt_length(self) -> int:
        return sum(1 for label in self.labels if label == IGNORE)

    def __len__(self) -> int:
        return len(self.input_ids)


def system_prompt(spec: TaskSpec) -> str:
    """The system turn: the instruction, and for classify tasks the allowed labels."""
    if spec.kind == "classify":
        return f"{spec.instruction}\nAnswer with one label: {', '.join(spec.labels)}."
    if spec.kind == "extract":
        return f"{spec.instruction}\nAnswer with JSON only."
    return spec.instruction


def messages(spec: TaskSpec, input: str, output: str | None = None, shots: Sequence[Example] = ()) -> list[dict]:
    """Chat messages for `input` (and its answer when `output` is given), after `shots` as earlier turns."""
    turns = [{"role": "system", "content": system_prompt(spec)}]
    for shot in shots:
        turns += [{"role": "user", "content": shot.input}, {"role": "assistant", "content": shot.output}]
    turns.append({"role": "user", "content": input})
    if output is not None:
        turns.append({"role": "assistant", "content": output})
    return turns


def prompt_text(spec: TaskSpec, input: str, tokenizer: Any, shots: Sequence[Example] = ()) -> str:
    """The prompt as text, ending where the assistant's answer starts."""
    turns = messages(spec, input, shots=shots)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    # Models without a chat template get a plain transcript with the same turn structure.
    lines = [turns[0]["content"], ""]
    for turn in turns[1:]:
        lines.append(("Input: " if turn["role"] == "user" else "Answer: ") + turn["content"])
    return "\n".join(lines) + "\nAnswer:"


def answer_frame(tokenizer: Any) -> tuple[str, str]:
    """Text the chat template puts before and after an assistant answer (e.g. '' and '<|im_end|>')."""
    template = getattr(tokenizer, "chat_template", None)
    cached = _frames.get(tokenizer)
    if cached is not None and cached[0] == template:
        return cached[1]
    if template:
        turns = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
        prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(turns + [{"role": "assistant", "content": _MARK}], tokenize=False)
        if not full.startswith(prompt) or _MARK not in full:
            raise ValueError(
                "the tokenizer's chat template does not extend the prompt with the answer; "
                "ShopLoRA cannot find where the answer starts"
            )
        before, after = full[len(prompt) :].split(_MARK)
        frame = (before, after.rstrip())  # the newline after the end-of-turn token teaches nothing
    else:
        frame = (" ", tokenizer.eos_token or "")
    _frames[tokenizer] = (template, frame)
    return frame


def answer_ids(output: str, tokenizer: Any) -> list[int]:
    """Token ids of an answer as the model must produce it, end-of-turn included (what loss and scoring use)."""
    before, after = answer_frame(tokenizer)
    return tokenizer(before + output + after, add_special_tokens=False)["input_ids"]


def prompt_ids(spec: TaskSpec, input: str, tokenizer: Any, shots: Sequence[Example] = ()) -> list[int]:
    """Token ids of the prompt (zero-shot, or k-shot in-context when `shots` are given)."""
    return tokenizer(prompt_text(spec, input, tokenizer, shots), add_special_tokens=False)["input_ids"]


def render(spec: TaskSpec, example: Example, tokenizer: Any, shots: Sequence[Example] = ()) -> Rendered:
    """Prompt + answer ids with loss on the answer only. Prompt and answer are tokenised separately, exactly as
    label scoring and generation see them, so training and inference agree on the boundary."""
    prompt = prompt_ids(spec, example.input, tokenizer, shots)
    answer = answer_ids(example.output, tokenizer)
    return Rendered(prompt + answer, [IGNORE] * len(prompt) + answer)
