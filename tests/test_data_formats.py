"""Data in the formats users of other tools have: chat `messages` JSONL (TRL, OpenAI), ShareGPT `conversations`
(LLaMA-Factory), and `datasets` folders written by `save_to_disk`, which `shoplora tasks export --datasets` writes."""

from __future__ import annotations

import json

import pytest

from prompts import Example, load_examples, suite
from prompts.errors import DataError
from prompts.loaders import chat_system_prompt
from prompts.render import system_prompt
from shoplora.cli import main

from tests.helpers import adapt_args

SPEC = suite.get_task("search-relevance").spec


def chat_row(user: str, answer: str, system: str | None = None) -> dict:
    turns = [{"role": "system", "content": system}] if system else []
    return {"messages": [*turns, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def write(path, rows):
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def test_messages_jsonl_loads_as_examples_and_gives_the_instruction(tmp_path):
    data = write(
        tmp_path / "chat.jsonl",
        [
            chat_row("where is my parcel", "where_is_my_order", "Route it."),
            chat_row("cancel it", "cancel_order", "Route it."),
        ],
    )
    assert load_examples(data) == [
        Example("where is my parcel", "where_is_my_order"),
        Example("cancel it", "cancel_order"),
    ]
    assert chat_system_prompt(data) == "Route it."
    # ShopLoRA's own rendered system prompt (instruction + label list) gives back the instruction alone
    rendered = write(
        tmp_path / "ours.jsonl",
        [chat_row("a", SPEC.labels[0], system_prompt(SPEC)), chat_row("b", SPEC.labels[1], system_prompt(SPEC))],
    )
    assert chat_system_prompt(rendered) == SPEC.instruction
    assert chat_system_prompt(write(tmp_path / "plain.jsonl", [{"input": "a", "output": "b"}])) is None


def test_sharegpt_conversations_and_content_parts_load(tmp_path):
    rows = [
        {"system": "Route it.", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}]},
                {"role": "assistant", "content": "y"},
            ]
        },
    ]
    assert load_examples(write(tmp_path / "sharegpt.jsonl", rows)) == [Example("hi", "x"), Example("two parts", "y")]


@pytest.mark.parametrize(
    "turns, found",
    [
        (
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
                {"role": "assistant", "content": "d"},
            ],
            "user -> assistant -> user -> assistant",
        ),
        ([{"role": "user", "content": "a"}], "found user;"),
        ([{"role": "tool", "content": "a"}], "use user, assistant or system"),
    ],
)
def test_chat_rows_shopLoRA_cannot_learn_are_refused_saying_why(tmp_path, turns, found):
    data = write(tmp_path / "bad.jsonl", [{"messages": turns}, chat_row("x", "y")])
    with pytest.raises(DataError, match=found) as error:
        load_examples(data)
    assert "bad.jsonl, line 1" in str(error.value)


def test_tasks_export_writes_a_datasets_folder_that_loads_back(tmp_path, capsys):
    from datasets import load_from_disk

    assert main(["tasks", "export", "search-relevance", str(tmp_path), "--datasets"]) == 0
    assert "dataset/" in capsys.readouterr().out
    folder = tmp_path / "search-relevance" / "dataset"
    task = suite.get_task("search-relevance")
    assert list(load_from_disk(str(folder))["test"]) == [e.to_dict() for e in task.examples("test")]
    assert load_examples(folder / "train", labels=task.spec.labels) == task.examples("train")
    with pytest.raises(DataError, match="pass one split's folder"):
        load_examples(folder)


def test_adapt_takes_the_instruction_from_chat_data(tmp_path, tiny_model_dir, capsys):
    from adapters import AdapterStore

    task = suite.get_task("service-intent-petshop")
    rows = [chat_row(e.input, e.output, system_prompt(task.spec)) for e in task.examples("train")[:6]]
    data = write(tmp_path / "chat.jsonl", rows)
    store = tmp_path / "store"
    assert main(adapt_args(data, labels=task.spec.labels, steps=1, store=store, model=tiny_model_dir)) == 0
    capsys.readouterr()
    assert AdapterStore(store).show("chat").spec.instruction == task.spec.instruction
