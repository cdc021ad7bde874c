"""The shared inner loop: answer-only loss with a sliced LM head, left-padded batches, LoRA-only updates."""

from __future__ import annotations

import random

import pytest
import torch

from adapters import load_base
from adapters.lora import LoraSettings, add_lora, load_lora_state, lora_parameters, lora_state, remove_lora
from adapters.training import InnerLoop, answer_loss, collate, length_batches, make_optimizer, mean_loss, train_steps
from prompts import ShopLoRAError, suite
from prompts.render import render


@pytest.fixture
def fresh(tiny_model_dir):
    """A base of its own: attaching LoRA changes the model in place."""
    return load_base(str(tiny_model_dir), device="cpu")


def rendered_examples(tokenizer, task="search-relevance", n=6):
    task = suite.get_task(task)
    return [render(task.spec, e, tokenizer) for e in task.examples("train")[:n]]


def test_loss_matches_plain_causal_lm_loss(fresh):
    tok = fresh.tokenizer
    one = rendered_examples(tok, n=1)[0]
    plain = fresh.model(input_ids=torch.tensor([one.input_ids]), labels=torch.tensor([one.labels])).loss
    ours = answer_loss(fresh.model, collate([one], tok.pad_token_id))
    torch.testing.assert_close(ours, plain)


def test_left_padded_batch_equals_examples_alone(fresh):
    # Different lengths and answer lengths: padding, positions and the sliced head must not change any loss.
    tok = fresh.tokenizer
    rendered = rendered_examples(tok, "search-query-rewrite", n=5)
    assert len({len(r) for r in rendered}) > 1
    batch_loss = answer_loss(fresh.model, collate(rendered, tok.pad_token_id))
    alone = [answer_loss(fresh.model, collate([r], tok.pad_token_id)) for r in rendered]
    n_answer = torch.tensor([float(len(r) - r.prompt_length) for r in rendered])
    torch.testing.assert_close(batch_loss, (torch.stack(alone) * n_answer).sum() / n_answer.sum())


def test_training_moves_lora_only_and_lowers_loss(fresh):
    tok = fresh.tokenizer
    base_before = {n: p.detach().clone() for n, p in fresh.model.named_parameters()}
    model = add_lora(fresh, "task-a", LoraSettings(r=4, alpha=8))
    before = lora_state(model, "task-a")
    rendered = rendered_examples(tok)
    start = mean_loss(model, rendered, pad_id=tok.pad_token_id)
    losses = train_steps(
        model,
        rendered,
        InnerLoop(steps=8, lr=1e-2, batch_size=6),
        pad_id=tok.pad_token_id,
        rng=random.Random(0),
        name="task-a",
    )
    assert len(losses) == 8 and mean_loss(model, rendered, pad_id=tok.pad_token_id) < start
    assert not any(p.requires_grad for p in model.parameters())  # frozen again after training
    after = lora_state(model, "task-a")
    assert all(not torch.equal(before[n], after[n]) for n in before if "lora_B" in n)
    for name, param in model.get_base_model().named_parameters():
        if "lora_" not in name:
            original = name.replace(".base_layer", "")
            assert torch.equal(param, base_before[original]), f"{name} changed"


def test_lora_state_roundtrip_and_mismatch(fresh):
    model = add_lora(fresh, "task-a", LoraSettings(r=2, targets=("q_proj", "v_proj")))
    state = {n: torch.randn_like(t) for n, t in lora_state(model, "task-a").items()}
    assert all(".lora_A.weight" in n or ".lora_B.weight" in n for n in state)  # PEFT file keys, no adapter name
    load_lora_state(model, state, "task-a")
    assert all(torch.equal(lora_state(model, "task-a")[n], state[n]) for n in state)
    # A second adapter on the same base takes the same tensors under its own name.
    add_lora(fresh, "task-b", LoraSettings(r=2, targets=("q_proj", "v_proj")))
    load_lora_state(model, state, "task-b")
    assert all(torch.equal(lora_state(model, "task-b")[n], state[n]) for n in state)
    with pytest.raises(ShopLoRAError, match="do not match the model"):
        load_lora_state(model, {"nope": torch.zeros(1)}, "task-a")
    remove_lora(fresh, "task-a")
    remove_lora(fresh, "task-b")
    assert lora_parameters(model, "task-a") == {} and lora_parameters(model, "task-b") == {}


def test_early_stop_callback(fresh):
    model = add_lora(fresh, "task-a", LoraSettings(r=2))
    losses = train_steps(
        model,
        rendered_examples(fresh.tokenizer),
        InnerLoop(steps=10),
        pad_id=0,
        rng=random.Random(0),
        name="task-a",
        on_step=lambda step, loss: step == 2,
    )
    assert len(losses) == 3


def test_length_batches_cover_everything_once(fresh):
    rendered = rendered_examples(fresh.tokenizer, "service-intent", n=20)
    batches = length_batches(rendered, 8, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(20))
    assert [len(b) for b in sorted(batches, key=len)] == [4, 8, 8]


def test_settings_validation():
    with pytest.raises(ShopLoRAError, match="unknown LoRA settings"):
        LoraSettings.from_dict({"rank": 8})
    with pytest.raises(ShopLoRAError, match="r must be >= 1"):
        LoraSettings(r=0)
    with pytest.raises(ShopLoRAError, match="optimizer 'lion'"):
        make_optimizer("lion", [], 0.1)
    with pytest.raises(ShopLoRAError, match="unknown inner-loop settings"):
        InnerLoop.from_dict({"stepz": 3})
    with pytest.raises(ShopLoRAError, match="steps must be >= 1"):
        InnerLoop(steps=0)
