"""The one renderer: answer-only loss, the chat template, k-shot prompts, short system turns."""

from __future__ import annotations

from prompts import Example, TaskSpec, suite
from prompts.render import IGNORE, answer_ids, messages, prompt_ids, prompt_text, render, system_prompt

SPEC = TaskSpec(
    "demo",
    "service",
    "classify",
    "Classify the customer's message.",
    labels=("where_is_my_order", "return_item", "cancel_order"),
)
EXAMPLE = Example("where is my parcel??", "where_is_my_order")


def test_loss_only_on_answer(tiny_tokenizer):
    rendered = render(SPEC, EXAMPLE, tiny_tokenizer)
    n_prompt = rendered.prompt_length
    assert rendered.labels[:n_prompt] == [IGNORE] * n_prompt
    answer = rendered.labels[n_prompt:]
    assert answer == rendered.input_ids[n_prompt:]
    assert tiny_tokenizer.decode(answer) == "where_is_my_order<|im_end|>"


def test_uses_chat_template(tiny_tokenizer):
    text = tiny_tokenizer.decode(render(SPEC, EXAMPLE, tiny_tokenizer).input_ids)
    assert text.startswith("<|im_start|>system\nClassify the customer's message.\nAnswer with one label: ")
    assert "<|im_start|>user\nwhere is my parcel??<|im_end|>\n<|im_start|>assistant\nwhere_is_my_order" in text


def test_prompt_and_answer_compose(tiny_tokenizer):
    rendered = render(SPEC, EXAMPLE, tiny_tokenizer)
    assert rendered.input_ids == (
        prompt_ids(SPEC, EXAMPLE.input, tiny_tokenizer) + answer_ids(EXAMPLE.output, tiny_tokenizer)
    )


def test_k_shot_prompt_puts_shots_as_earlier_turns(tiny_tokenizer):
    shots = [Example("cancel it please", "cancel_order"), Example("I want to send this back", "return_item")]
    turns = messages(SPEC, EXAMPLE.input, shots=shots)
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user", "assistant", "user"]
    text = prompt_text(SPEC, EXAMPLE.input, tiny_tokenizer, shots=shots)
    assert text.index("cancel it please") < text.index("I want to send this back") < text.index("where is my parcel")
    assert text.endswith("<|im_start|>assistant\n")
    rendered = render(SPEC, EXAMPLE, tiny_tokenizer, shots=shots)
    assert tiny_tokenizer.decode(rendered.labels[rendered.prompt_length :]) == "where_is_my_order<|im_end|>"


def test_without_chat_template(tiny_model_without_chat_template):
    from adapters import load_base

    base = load_base(str(tiny_model_without_chat_template), device="cpu")
    rendered = render(SPEC, EXAMPLE, base.tokenizer)
    assert base.tokenizer.decode(rendered.input_ids).endswith(
        "Input: where is my parcel??\nAnswer: where_is_my_order<|im_end|>"
    )
    assert base.tokenizer.decode(rendered.labels[rendered.prompt_length :]) == " where_is_my_order<|im_end|>"


def test_system_turn_kinds():
    assert system_prompt(SPEC).endswith("Answer with one label: where_is_my_order, return_item, cancel_order.")
    extract = TaskSpec("x", "product", "extract", "Extract the attributes.")
    assert system_prompt(extract) == "Extract the attributes.\nAnswer with JSON only."


def test_every_suite_task_renders(tiny_tokenizer):
    for task in suite.tasks():
        example = task.examples("train")[0]
        rendered = render(task.spec, example, tiny_tokenizer)
        assert rendered.prompt_length < len(rendered)
