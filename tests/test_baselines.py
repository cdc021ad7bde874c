"""The practitioner baselines of the benchmark (tfidf, lora_plain), the label loss and the recipe sweep, on the
tiny model."""

from __future__ import annotations

import json

import pytest
import torch

import train.evaluate as evaluate
from adapters import adapt, load_base
from adapters.recipe import Recipe
from prompts import Example, ShopLoRAError, suite
from train.baselines import plain_lora, plain_steps, tfidf_predictions
from train.sweep import main as sweep, validation_set

TASK = suite.get_task("risk-return-abuse")  # held out, 3 labels


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return load_base(str(tiny_model_dir), device="cpu")


def test_tfidf_learns_words_that_tell_labels_apart():
    support = [
        Example(f"{word} order {i}", label)
        for i in range(4)
        for word, label in (("parcel late", "where"), ("refund money", "refund"), ("cancel stop", "cancel"))
    ]
    assert tfidf_predictions(support, ["my parcel is late", "i want my money refunded", "please stop it"]) == [
        "where",
        "refund",
        "cancel",
    ]
    assert tfidf_predictions(support[:1], ["anything"]) == ["where"]  # one label seen: the only answer it has


def test_plain_lora_trains_on_every_example_for_fixed_epochs(base):
    support = TASK.examples("train")[:20]
    before = {n: p.detach().clone() for n, p in base.model.named_parameters()}
    adapter = plain_lora(base, TASK.spec, support, seed=0)
    assert adapter.record.fit.steps_run == plain_steps(20) == 16  # 8 epochs of 2 batches
    assert any(v.abs().sum() > 0 for k, v in adapter.state().items() if "lora_B" in k)  # B moved from zero
    assert all(torch.equal(before[n], p) for n, p in base.model.named_parameters() if n in before)  # base frozen
    assert {p.label for p in adapter.predict([e.input for e in TASK.examples("test")[:3]])} <= set(TASK.spec.labels)
    adapter.unload()


def test_compare_scores_the_practitioner_baselines(base):
    results = list(evaluate.score_methods(base, TASK, k=12, seed=0, n_test=6, methods=["tfidf", "lora_plain"]))
    assert [r.method for r in results] == ["tfidf", "lora_plain"]
    assert all(0 <= r.score <= 1 for r in results) and results[1].steps == plain_steps(12)
    generate = suite.get_task("search-query-rewrite")
    assert list(evaluate.score_methods(base, generate, k=4, seed=0, n_test=2, methods=["tfidf"])) == []  # classify only


def test_the_label_loss_trains_the_decision(base):
    examples = TASK.examples("train")[:12]
    recipe = Recipe(loss="labels", lr=1e-2, min_steps=6, max_steps=6)
    adapter = adapt(base, examples, spec=TASK.spec, init=None, recipe=recipe)
    assert adapter.record.fit.inner_loop.loss == "labels"
    losses = adapter.record.fit.train_loss
    assert len(losses) == 6 and losses[-1] < losses[0]
    adapter.unload()
    with pytest.raises(ShopLoRAError, match="inner-loop loss"):
        Recipe(loss="tokens").loop(10)


def test_the_sweep_scores_train_examples_only_and_resumes(tiny_model_dir, tmp_path, capsys):
    support = evaluate.support_set(TASK, 8, 0, cover_labels=True)
    validation = validation_set(TASK, support, 20, 0)
    test_inputs = {e.input for e in TASK.examples("test")}
    assert not {e.input for e in validation} & ({e.input for e in support} | test_inputs)
    out = tmp_path / "sweep.json"
    args = [
        "--tasks",
        TASK.name,
        "--shots",
        "8",
        "--variants",
        "max_steps=24",
        "lr=1e-3,min_steps=2,max_steps=2",
        "--inits",
        "none",
        "--n-validation",
        "10",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(out),
    ]
    sweep(args)
    rows = json.loads(out.read_text())
    assert [r["variant"] for r in rows] == ["max_steps=24", "lr=1e-3,min_steps=2,max_steps=2"]
    assert rows[1]["recipe"]["lr"] == 1e-3 and rows[1]["steps_run"] == 2 and rows[0]["steps_run"] == 24
    capsys.readouterr()
    sweep(args)  # everything done: nothing runs again
    assert capsys.readouterr().out == "" and len(json.loads(out.read_text())) == 2


@pytest.mark.parametrize("loss", ["answer", "labels"])
def test_a_shared_prefix_gives_the_same_loss_and_gradients_as_whole_prompts(base, loss):
    from adapters.lora import add_lora, lora_parameters, remove_lora
    from adapters.scoring import label_loss
    from adapters.training import answer_loss, collate, shared_prefix_loss
    from prompts.render import answer_ids, render

    rendered = [render(TASK.spec, e, base.tokenizer) for e in TASK.examples("train")[:6]]
    pad = base.tokenizer.pad_token_id
    labels = [answer_ids(label, base.tokenizer) for label in TASK.spec.labels]
    whole, shared_fn = {
        "answer": (
            lambda: answer_loss(base.model, collate(rendered, pad)),
            lambda: shared_prefix_loss(base.model, rendered, pad, "cpu"),
        ),
        "labels": (
            lambda: label_loss(base.model, rendered, labels, pad, share_prefix=False),
            lambda: label_loss(base.model, rendered, labels, pad, share_prefix=True),
        ),
    }[loss]
    add_lora(base, "grad")
    params = lora_parameters(base.model, "grad")
    try:
        torch.manual_seed(0)
        for p in params.values():  # B starts at zero; random B lets the prefix's keys and values depend on A too
            p.data.normal_(0, 0.05)
            p.requires_grad_(True)
        base.model.eval()  # no dropout: the two passes must see the same network

        def gradients(loss_fn):
            value = loss_fn()
            grads = torch.autograd.grad(value, list(params.values()))
            return value.item(), grads

        plain, plain_grads = gradients(whole)
        shared, shared_grads = gradients(shared_fn)
        assert shared == pytest.approx(plain, rel=1e-4)
        for name, a, b in zip(params, plain_grads, shared_grads):
            assert a.abs().max() > 0, name
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-6), name
    finally:
        remove_lora(base, "grad")


def test_a_shared_prefix_gives_the_same_loss_with_less_to_differentiate(base):
    from adapters.training import answer_loss, collate, shared_prefix_length, shared_prefix_loss
    from prompts.render import render

    rendered = [render(TASK.spec, e, base.tokenizer) for e in TASK.examples("train")[:6]]
    length = shared_prefix_length(rendered)
    assert length >= 16 and all(r.input_ids[:length] == rendered[0].input_ids[:length] for r in rendered)
    assert length < min(r.prompt_length for r in rendered)  # each keeps a prompt token to predict the answer from
    with torch.no_grad():
        plain = answer_loss(base.model, collate(rendered, base.tokenizer.pad_token_id))
        shared = shared_prefix_loss(base.model, rendered, base.tokenizer.pad_token_id, "cpu")
    assert shared.item() == pytest.approx(plain.item(), rel=1e-4)
    recipe = Recipe(lr=1e-2, min_steps=6, max_steps=6)
    assert recipe.share_prefix and recipe.loop(10).share_prefix
    adapter = adapt(base, TASK.examples("train")[:12], spec=TASK.spec, init=None, recipe=recipe)
    assert adapter.record.fit.train_loss[-1] < adapter.record.fit.train_loss[0]
    adapter.unload()


def test_out_of_scope_catch_rate_at_a_false_alarm_budget():
    from train.out_of_scope import caught_at

    in_scope = [0.9] * 18 + [0.3, 0.5]  # 20 messages: a 5% budget hands over the one below 0.5
    threshold, caught = caught_at(in_scope, [0.2, 0.4, 0.6, 0.95], 0.05)
    assert threshold == 0.5 and caught == 0.5
    assert caught_at(in_scope, [0.1], 0.0) == (0.3, 1.0)
