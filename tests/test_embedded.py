"""The embedded SmolLM2-135M-Instruct: converted once, loaded offline, generates from a rendered prompt."""

from __future__ import annotations

import pytest

from adapters import generate, load_base
from adapters.base import EMBEDDED_ID
from prompts import suite
from prompts.render import render, system_prompt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded(all_threads):
    return load_base()


def test_embedded_model_shape_and_template(embedded):
    config = embedded.model.config
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (30, 576, 49152)
    assert embedded.model_id == EMBEDDED_ID
    assert embedded.tokenizer.chat_template


def test_greedy_generation_from_rendered_prompt(embedded):
    task = suite.get_task("search-query-rewrite")
    example = task.examples("test")[0]
    answer = generate(embedded, task.spec, [example.input], max_new_tokens=16)[0]
    assert answer and len(embedded.tokenizer(answer)["input_ids"]) <= 16
    again = generate(embedded, task.spec, [example.input], max_new_tokens=16)[0]
    assert again == answer  # greedy is deterministic


def test_rendered_answer_ends_with_end_of_turn(embedded):
    task = suite.get_task("service-intent")
    rendered = render(task.spec, task.examples("train")[0], embedded.tokenizer)
    assert embedded.tokenizer.decode(rendered.labels[rendered.prompt_length :]).endswith("<|im_end|>")


def test_system_turns_stay_short(embedded):
    # Every task with up to 27 labels (hub-bitext-intent has 27) must leave room for the input: under 200 tokens.
    tasks = [t for name in suite.available_suites() for t in suite.tasks(name) if len(t.spec.labels) <= 27]
    assert any(len(t.spec.labels) == 27 for t in tasks)
    for task in tasks:
        n_tokens = len(embedded.tokenizer(system_prompt(task.spec))["input_ids"])
        assert n_tokens < 200, f"{task.name}: {n_tokens} tokens"
