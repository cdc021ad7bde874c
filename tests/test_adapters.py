"""Adaptation, prediction, and the adapter store on the tiny model."""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections import Counter
from dataclasses import replace

import pytest
import torch

from adapters import ABSTAIN, Adapter, AdapterFileError, AdapterStore, adapt, load_adapter, load_base
from adapters.fit import AdaptationWarning, TrainingDiverged
from adapters.specs import LabelCoverageWarning, calibration_choice, needs_calibration, task_spec
from adapters.recipe import Recipe, held_out_split
from adapters.record import AdapterRecord, InitRecord
from adapters.files import KEEP_PREVIOUS
from adapters.lora import LoraSettings
from adapters.metrics import fit_temperature
from adapters.scoring import CONTENT_FREE, label_scores, label_tree
from adapters.training import InnerLoop
from prompts import Example, ShopLoRAError, TaskSpec, suite
from prompts.render import render

from tests.helpers import save_init

TASK = suite.get_task("service-intent-petshop")
EXAMPLES = TASK.examples("train")[:24]
TEST_INPUTS = [e.input for e in TASK.examples("test")[:4]]


# base, one a module: tests/conftest.py
@pytest.fixture(scope="module")
def adapter(base):
    return adapt(base, EXAMPLES, instruction=TASK.spec.instruction, labels=TASK.spec.labels, init=None, steps=6)


def full_forward_score(base, spec, text, label, shots=()) -> float:
    r = render(spec, Example(text, label), base.tokenizer, shots=shots)
    logprobs = torch.log_softmax(base.model(input_ids=torch.tensor([r.input_ids])).logits[0].float(), -1)
    return sum(logprobs[t - 1, r.input_ids[t]].item() for t in range(r.prompt_length, len(r)))


@pytest.mark.parametrize(
    "labels,inputs,shots",
    [
        (TASK.spec.labels, TEST_INPUTS[:3], ()),
        (("return", "return_item", "re", "refund"), TEST_INPUTS[:3], ()),
        (("return", "refund"), TEST_INPUTS[:1], ()),  # one input: all but its last token is the shared prefix
        (TASK.spec.labels[:4], TEST_INPUTS[:3], EXAMPLES[:2]),  # in-context shots join the shared prefix
    ],
)
def test_label_scores_match_a_full_forward_per_label(base, labels, inputs, shots):
    # Labels that are prefixes of each other share tree nodes; each must still get its own exact likelihood, and
    # running the prompts' shared prefix once (padding after it, before each input's own tokens) changes nothing.
    spec = TaskSpec("t", "service", "classify", "Route it.", labels=labels)
    scores = label_scores(base.model, base.tokenizer, spec, inputs, batch_size=2, shots=shots)
    for i, text in enumerate(inputs):
        for j, label in enumerate(labels[:5]):
            assert scores[i][j] == pytest.approx(full_forward_score(base, spec, text, label, shots), abs=1e-3)


@pytest.mark.parametrize("shots", [(), EXAMPLES[:2]], ids=["zero-shot", "in-context"])
def test_contextual_calibration_divides_out_the_content_free_prior(base, shots):
    spec = TaskSpec("t", "service", "classify", "Route it.", labels=TASK.spec.labels[:5])
    raw = torch.tensor(label_scores(base.model, base.tokenizer, spec, TEST_INPUTS, shots=shots)).log_softmax(-1)
    free = torch.tensor(label_scores(base.model, base.tokenizer, spec, CONTENT_FREE, shots=shots)).log_softmax(-1)
    calibrated = torch.tensor(label_scores(base.model, base.tokenizer, spec, TEST_INPUTS, shots=shots, calibrate=True))
    assert torch.allclose(calibrated, raw - free.exp().mean(0).log(), atol=1e-4)
    alone = label_scores(base.model, base.tokenizer, spec, TEST_INPUTS[1:2], shots=shots, calibrate=True)
    assert torch.allclose(torch.tensor(alone[0]), calibrated[1], atol=1e-4)  # the prior does not depend on the batch
    # The content-free inputs themselves come out with no preference left: on average uniform over the labels.
    evened = torch.tensor(label_scores(base.model, base.tokenizer, spec, CONTENT_FREE, shots=shots, calibrate=True))
    assert torch.allclose(evened.exp().mean(0), torch.ones(5), atol=1e-4)


def test_calibration_is_on_by_default_exactly_when_a_label_has_no_example():
    covering = [next(e for e in TASK.examples("train") if e.output == label) for label in TASK.spec.labels]
    assert not needs_calibration(TASK.spec, covering) and needs_calibration(TASK.spec, covering[1:])
    assert needs_calibration(TASK.spec, covering, "always") and not needs_calibration(TASK.spec, covering[1:], "never")
    assert needs_calibration(TASK.spec, covering, True) and not needs_calibration(TASK.spec, covering[1:], False)
    assert needs_calibration(TASK.spec, [])  # zero-shot: no label has an example
    extract = TaskSpec("x", "product", "extract", "Fill the JSON.")
    assert not needs_calibration(extract, [], "always")


@pytest.mark.parametrize(
    "value, choice",
    [("auto", "auto"), ("always", "always"), ("never", "never"), (True, "always"), (False, "never"), (None, "auto")],
)
def test_calibration_choice_takes_its_names_and_the_older_bool_or_none(value, choice):
    assert calibration_choice(value) == choice


@pytest.mark.parametrize("value", ["on", "Always", "true", 1, 0, 0.5, ["always"]])
def test_adapt_refuses_any_other_calibration_choice_before_training(base, value):
    with pytest.raises(ShopLoRAError, match=r"contextual_calibration must be one of 'auto', 'always', 'never', got"):
        adapt(base, EXAMPLES, spec=TASK.spec, init=None, steps=1, contextual_calibration=value)


def test_adapt_records_the_resolved_calibration_as_a_bool(base):
    covering = [next(e for e in TASK.examples("train") if e.output == label) for label in TASK.spec.labels]
    for choice, on in (("auto", False), ("always", True), ("never", False)):
        adapter = adapt(base, covering, spec=TASK.spec, init=None, steps=1, contextual_calibration=choice)
        assert adapter.record.contextual_calibration is on and adapter.record.to_json()["contextual_calibration"] is on


def test_label_tree_shares_prefixes():
    tree = label_tree([[1, 2, 9], [1, 2, 3, 9], [4, 9]])
    assert tree.tokens == [1, 2, 3, 4] and tree.parents == [-1, 0, 1, -1] and tree.depths == [0, 1, 2, 0]
    assert tree.paths[1] == [(-1, 1), (0, 2), (1, 3), (2, 9)]


def test_predict_gives_labels_probabilities_and_abstains(adapter):
    predictions = adapter.predict(TEST_INPUTS)
    for p in predictions:
        assert p.label in TASK.spec.labels
        assert sum(p.scores.values()) == pytest.approx(1.0)
        assert p.confidence == max(p.scores.values())
    assert all(p.label == ABSTAIN for p in adapter.predict(TEST_INPUTS, abstain_below=1.01))


def test_a_classify_prediction_names_its_answer_and_its_best_label(adapter):
    [confident] = adapter.predict(TEST_INPUTS[:1], abstain_below=0.0)
    best = max(confident.scores, key=confident.scores.get)
    assert confident.best_label == confident.label == confident.text == best
    assert confident.to_dict()["prediction"] == best
    [abstained] = adapter.predict(TEST_INPUTS[:1], abstain_below=1.01)
    assert abstained.best_label == best  # the best guess survives abstention
    assert abstained.label == abstained.text == abstained.to_dict()["prediction"] == ABSTAIN
    assert abstained.confidence == confident.confidence and abstained.scores == confident.scores


def test_adapt_records_what_it_did(adapter):
    record = adapter.record
    repeated = [label for label in TASK.spec.labels if [e.output for e in EXAMPLES].count(label) >= 2]
    assert record.init == "standard" and record.n_examples == 24 and record.fit.n_held_out == len(repeated)
    assert record.fit.steps_run <= 6 and len(record.fit.train_loss) == record.fit.steps_run
    assert {
        "held_out_accuracy",
        "held_out_ece",
        "held_out_accuracy_before",
        "held_out_accuracy_last",
        "held_out_per_label",
    } <= set(record.metrics)
    assert sum(row["n"] for row in record.metrics["held_out_per_label"].values()) == len(repeated)
    assert record.recipe == Recipe() and record.fit.inner_loop.steps == 6
    assert adapter.temperature > 0


def test_adapt_warns_about_labels_without_examples(base):
    first = TASK.spec.labels[0]
    few = [e for e in EXAMPLES if e.output != first][:6]  # 6 examples of a 12-label task, none of the first label
    with pytest.warns(LabelCoverageWarning, match="labels have no example"):
        partial = adapt(base, few, spec=TASK.spec, init=None, steps=1)
    [message] = partial.record.warnings
    missing = set(TASK.spec.labels) - {e.output for e in few}
    assert message.startswith(f"{len(missing)} of 12 labels") and first in message
    assert partial.contextual_calibration and partial.record.contextual_calibration
    calibrated = partial.label_scores(TEST_INPUTS)
    partial.record.contextual_calibration = False  # as saved by a version without it: raw scores
    assert partial.label_scores(TEST_INPUTS) != calibrated
    partial.unload()
    covering = [next(e for e in TASK.examples("train") if e.output == label) for label in TASK.spec.labels]
    whole = adapt(base, covering, spec=TASK.spec, init=None, steps=1)
    assert whole.record.warnings == [] and not whole.contextual_calibration
    whole.unload()


def test_the_held_out_part_is_stratified():
    import random

    pool = TASK.examples("train")
    first, second = TASK.spec.labels[:2]
    # one example of `first`, two of `second`, many of the rest: 40 examples, a fifth is 8
    examples = [
        next(e for e in pool if e.output == first),
        *[e for e in pool if e.output == second][:2],
        *[e for e in pool if e.output not in (first, second)][:37],
    ]
    for seed in range(5):
        held, train = held_out_split(examples, random.Random(seed), classify=True)
        counts = Counter(e.output for e in examples)
        assert {e.output for e in held} == {label for label, n in counts.items() if n >= 2}  # every repeated label
        assert first in {e.output for e in train} and second in {e.output for e in train}  # none loses its last
        assert len(held) >= len(examples) // 5 and sorted(held + train, key=id) == sorted(examples, key=id)
    assert held_out_split(examples, random.Random(3), classify=True) == held_out_split(
        examples, random.Random(3), classify=True
    )
    assert held_out_split(examples[:15], random.Random(0), classify=True)[0] == []  # under 16: none held out
    many_labels = [e for label in TASK.spec.labels for e in [x for x in pool if x.output == label][:2]]  # 12 x 2
    held, train = held_out_split(many_labels, random.Random(0), classify=True)
    assert len(held) == 12 and Counter(e.output for e in train) == Counter(TASK.spec.labels)  # more than a fifth


def test_early_stopping_follows_the_label_scorer_and_the_kept_check_calibrates(base, monkeypatch):
    """A classify task's held-out checks score labels; with 8+ held out every step is checked, PATIENCE checks
    without progress stop the run, and the kept check's scores (not a later pass's) fit the temperature. Scripted:
    wrong at the start, right after step 1, wrong from step 2 on."""
    from adapters.fit import PATIENCE

    _scores_by_step(monkeypatch, lambda step, g: _answer(g if step == 1 else (g + 1) % len(TASK.spec.labels)))
    adapter = adapt(base, TASK.examples("train")[:40], spec=TASK.spec, init=None, steps=12, lr=1e-2)
    record, n_held = adapter.record, adapter.record.fit.n_held_out
    assert n_held >= 8 and record.fit.steps_kept == 1 and record.fit.steps_run == 1 + PATIENCE
    metrics = record.metrics
    assert (metrics["held_out_accuracy_before"], metrics["held_out_accuracy"], metrics["held_out_accuracy_last"]) == (
        0.0,
        1.0,
        0.0,
    )
    # every scripted row is one right label at margin 5, so the held-out rows of step 1 are n_held such rows
    assert adapter.temperature == pytest.approx(fit_temperature([_answer(0)] * n_held, [0] * n_held))
    adapter.unload()


def test_a_small_held_out_set_calibrates_but_does_not_stop_training(base, monkeypatch):
    """3 held-out examples are too few to choose a step by: every step runs, the only candidates are the start and
    the last step, and the last step's check calibrates. Scripted: wrong at the start, right with margin 5 after
    steps 1-2 (a checked run would keep step 2 and stop at step 4), wrong at 3-4, right with margin 2 at step 5."""

    def row(step: int, g: int) -> list[float]:
        return _answer(g, 5.0) if step in (1, 2) else _answer(g, 2.0) if step == 5 else _answer(1 - g)

    _scores_by_step(monkeypatch, row)
    two_labels = [e for e in TASK.examples("train") if e.output in TASK.spec.labels[:2]][:16]
    adapter = adapt(base, two_labels, spec=TASK.spec, init=None, steps=5, lr=1e-2)
    record = adapter.record
    assert (record.fit.n_held_out, record.fit.steps_run, record.fit.steps_kept) == (3, 5, 5)
    assert record.metrics["held_out_accuracy"] == 1.0
    assert adapter.temperature == pytest.approx(fit_temperature([_answer(0, 2.0)] * 3, [0] * 3))
    adapter.unload()


def test_adapt_is_deterministic_for_a_seed(base):
    kwargs = dict(instruction=TASK.spec.instruction, labels=TASK.spec.labels, init=None, steps=3)
    first = adapt(base, EXAMPLES[:8], seed=1, **kwargs).state()
    second = adapt(base, EXAMPLES[:8], seed=1, **kwargs).state()
    third = adapt(base, EXAMPLES[:8], seed=2, **kwargs).state()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_training_learns_a_tiny_task(base):
    examples = [
        Example(f"order {i} {word}", label)
        for i in range(12)
        for word, label in (("refund please", "money"), ("where is it", "track"))
    ]
    adapter = adapt(base, examples, instruction="Route the message.", init=None, steps=40, lr=1e-2)
    assert adapter.evaluate(examples)["accuracy"] == 1.0


def test_two_adapters_share_one_base_and_switch(base, adapter):
    other = adapt(
        base, EXAMPLES[:8], instruction="Something else.", labels=TASK.spec.labels, init=None, steps=3, seed=5
    )
    a_scores = [p.scores for p in adapter.predict(TEST_INPUTS[:2])]
    b_scores = [p.scores for p in other.predict(TEST_INPUTS[:2])]
    assert a_scores != b_scores
    assert [p.scores for p in adapter.predict(TEST_INPUTS[:2])] == a_scores  # switching back gives the same answers
    other.unload()


def test_store_roundtrip_and_plain_peft(base, adapter, tmp_path, tiny_model_dir, monkeypatch):
    store = AdapterStore(tmp_path / "store")
    path = store.save(adapter, "pet-shop")
    assert sorted(p.name for p in path.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "shoplora.json",
    ]
    again = load_adapter("pet-shop", store=store, base=base)
    assert [p.scores for p in again.predict(TEST_INPUTS)] == [p.scores for p in adapter.predict(TEST_INPUTS)]
    assert again.temperature == adapter.temperature
    assert again.contextual_calibration == adapter.contextual_calibration == bool(adapter.record.warnings)
    with monkeypatch.context() as patch:  # without base=, the base already loaded in this process is reused
        patch.setattr("adapters.store.load_base", lambda *args, **kwargs: pytest.fail("loaded a second base"))
        assert load_adapter("pet-shop", store=store).base.model_id == base.model_id
    # Plain PEFT on a fresh copy of the base gives the same logits.
    from peft import PeftModel

    plain_base = load_base(str(tiny_model_dir), device="cpu")
    plain = PeftModel.from_pretrained(plain_base.model, str(path))
    ids = torch.tensor([render(TASK.spec, EXAMPLES[0], base.tokenizer).input_ids])
    with base.lock:
        ours = adapter.activate()(input_ids=ids).logits
    torch.testing.assert_close(plain(input_ids=ids).logits, ours)
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["r"] <= 16 and not config.get("modules_to_save") and isinstance(config["target_modules"], list)
    card = (path / "README.md").read_text()  # a local base model is no Hub id: the card's code names it, not base_model
    assert "library_name: peft" in card and f"BASE_MODEL = {base.model_id!r}" in card and "\nbase_model:" not in card


def test_store_overwrite_keeps_previous_and_lists(base, adapter, tmp_path, monkeypatch):
    store = AdapterStore(tmp_path)
    store.save(adapter, "acme")
    with pytest.raises(AdapterFileError, match="already exists; pass overwrite=True"):
        store.save(adapter, "acme")
    store.save(adapter, "acme", overwrite=True)
    assert len(store.previous_versions("acme")) == 1
    for _ in range(KEEP_PREVIOUS + 1):
        newest = store.save(adapter, "acme", overwrite=True)
    kept = store.previous_versions("acme")
    assert len(kept) == KEEP_PREVIOUS and kept[-1].stat().st_mtime_ns <= newest.stat().st_mtime_ns
    assert [row["name"] for row in store.list()] == ["acme"]
    with monkeypatch.context() as patch:  # listing and show read the record only, never the weights
        patch.setattr("adapters.files._read_weights", lambda path: pytest.fail("read the weights"))
        assert store.show("acme").spec.labels == TASK.spec.labels
        assert store.list()[0]["labels"] == len(TASK.spec.labels)
    store.delete("acme")
    assert store.names() == [] and list(tmp_path.iterdir()) == []  # previous versions go with it
    with pytest.raises(AdapterFileError, match="no adapter called 'acme'"):
        store.load("acme", base)


@pytest.mark.parametrize("name", ["../x", "a/b", "Upper", "x" * 200, "", ".hidden", "a..b"])
def test_bad_names_are_refused(adapter, tmp_path, name):
    with pytest.raises(ShopLoRAError, match="is not allowed"):
        AdapterStore(tmp_path).save(adapter, name)
    assert list(tmp_path.iterdir()) == []


def test_store_path_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ShopLoRAError, match="is a file"):
        AdapterStore(tmp_path / "file")


def test_crash_mid_save_leaves_nothing(adapter, tmp_path, monkeypatch):
    store = AdapterStore(tmp_path)

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with pytest.raises(RuntimeError):
        store.save(adapter, "half")
    assert list(tmp_path.iterdir()) == []


def test_broken_folders_are_reported(base, adapter, tmp_path):
    store = AdapterStore(tmp_path)
    path = store.save(adapter, "good")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "adapter_config.json").write_text("{}")
    with pytest.raises(AdapterFileError, match=r"incomplete \(missing adapter_model.safetensors, shoplora.json\)"):
        store.load("partial", base)
    pickle = tmp_path / "pickle"
    pickle.mkdir()
    (pickle / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(AdapterFileError, match="safetensors only"):
        store.load("pickle", base)
    (path / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(AdapterFileError, match="corrupted"):
        store.load("good", base)
    assert {row["name"]: "error" in row for row in store.list()} == {"good": True, "partial": True, "pickle": True}


def test_other_base_model_is_refused(adapter, tmp_path):
    store = AdapterStore(tmp_path)
    path = store.save(adapter, "acme")
    record = json.loads((path / "shoplora.json").read_text())
    (path / "shoplora.json").write_text(json.dumps({**record, "base_fingerprint": "0" * 16}))
    with pytest.raises(ShopLoRAError, match="when that model had architecture 0{16}.*it was replaced since") as caught:
        load_adapter("acme", store=store, base=adapter.base)  # the same name, another model under it
    assert str(caught.value).count(adapter.base.model_id) == 1


def test_the_budget_follows_the_examples_not_the_init(base, adapter, tmp_path):
    init = save_init(adapter, tmp_path / "init", InitRecord(inner_loop=InnerLoop(steps=2, lr=1e-3)))
    recipe = Recipe(epochs=2, batch_size=8, lr=1e-3, min_steps=3, max_steps=40)
    adapted = adapt(base, EXAMPLES[:8], instruction="x", labels=TASK.spec.labels, init=init, recipe=recipe)
    assert adapted.record.fit.steps_run == 3 and adapted.record.fit.inner_loop.lr == 1e-3  # min_steps: 2 epochs of 1
    more = adapt(base, EXAMPLES, instruction="x", labels=TASK.spec.labels, init=init, recipe=recipe)
    n_train = more.record.fit.n_train
    # the budget (early stopping on the held-out checks may end the run sooner)
    assert more.record.fit.inner_loop.steps == 2 * -(-n_train // 8) and more.record.fit.inner_loop.batch_size == 8
    assert (
        adapt(
            base, EXAMPLES, instruction="x", labels=TASK.spec.labels, init=init, recipe=recipe, steps=2
        ).record.fit.steps_run
        == 2
    )  # steps given run exactly
    assert Recipe().loop(5).batch_size == 5 and Recipe().loop(5).steps == Recipe().min_steps
    assert Recipe().loop(10_000).steps == Recipe().max_steps
    with pytest.raises(ShopLoRAError, match="unknown recipe settings"):
        Recipe.from_dict({"epochs": 2, "warmup": 3})
    with pytest.raises(ShopLoRAError, match="no init at"):
        adapt(base, EXAMPLES[:8], instruction="x", labels=TASK.spec.labels, init=tmp_path / "missing")


def test_default_init_without_a_shipped_one_names_the_fix(base):
    with pytest.raises(ShopLoRAError, match=r"no shipped default init for .*init=None"):
        adapt(base, EXAMPLES[:8], instruction="x", labels=TASK.spec.labels)


def test_bad_adapt_input(base):
    with pytest.raises(ShopLoRAError, match="instruction is empty"):
        adapt(base, EXAMPLES[:8], instruction=" ", init=None)
    with pytest.raises(ShopLoRAError, match="single example"):
        adapt(base, EXAMPLES[:1], instruction="x", init=None)
    with pytest.raises(ShopLoRAError, match="is not one of the labels"):
        adapt(base, EXAMPLES[:8], instruction="x", labels=["a", "b"], init=None)
    narrow = replace(TASK.spec, labels=tuple(label for label in TASK.spec.labels if label != EXAMPLES[0].output))
    with pytest.raises(ShopLoRAError, match="is not one of the labels"):  # a spec's labels bound its examples too
        adapt(base, EXAMPLES[:8], spec=narrow, init=None)


def test_inputs_longer_than_the_context_are_refused_clearly(base, adapter):
    # The tiny model reads 1024 tokens; refusing (not truncating) is the documented behaviour.
    long = "where is my parcel " * 200  # under the 4000-character limit of an example, over 1024 tokens
    with pytest.raises(ShopLoRAError, match="over the model's context of 1024: shorten or split it"):
        adapt(base, [*EXAMPLES[:7], Example(long, EXAMPLES[0].output)], instruction="x", init=None, steps=1)
    with pytest.raises(ShopLoRAError, match="over the model's context"):
        adapter.predict(["short one", long])
    with pytest.raises(ShopLoRAError, match="tokens to generate, over the model's context"):
        adapter.generate([long])
    assert adapter.predict(["short one"])[0].label in TASK.spec.labels  # the adapter is still fine


def test_kind_inference():
    same = [Example("a", "yes"), Example("b", "no"), Example("c", "yes")]
    assert task_spec(same, "x", None, None).kind == "classify"
    assert task_spec(same, "x", None, None).labels == ("yes", "no")
    assert task_spec([Example("a", '{"k": 1}'), Example("b", '{"k": 2}')], "x", None, None).kind == "extract"
    replies = [Example("a", "a long reply here now"), Example("b", "another one")]
    assert task_spec(replies, "x", None, None).kind == "generate"


def test_extract_predictions_parse_json_or_say_why(base):
    task = suite.get_task("service-slot-filling")
    extract = adapt(
        base, task.examples("train")[:4], instruction=task.spec.instruction, kind="extract", init=None, steps=1
    )
    prediction = extract.predict([task.examples("test")[0].input])[0]
    # A barely trained tiny model answers gibberish: the error says so instead of raising for the whole batch.
    assert (prediction.value is not None) != (prediction.error is not None)
    if prediction.error:
        assert "not valid JSON" in prediction.error


def test_shipped_inits_are_complete_peft_folders():
    from adapters.base import EMBEDDED_ID
    from adapters.files import read_lora_dir
    from adapters.init_catalog import shipped_inits

    inits = shipped_inits()
    assert {"smollm2-135m-meta", "smollm2-135m-multitask"} <= set(inits)
    records = {name: read_lora_dir(path) for name, path in inits.items()}
    assert [name for name, files in records.items() if files.record.default] == ["smollm2-135m-multitask"]
    for files in records.values():
        assert files.base_model_id == EMBEDDED_ID and files.record.base_fingerprint
        assert isinstance(files.record.inner_loop, InnerLoop)  # read and checked with the record
        assert files.settings.r <= 16


def test_adapt_estimates_the_examples_a_task_needs(base, monkeypatch):
    examples = TASK.examples("train")[:40]
    names_before = set(base.peft.peft_config) if base.peft is not None else set()
    from adapters import Adapter

    scored_calibrated = []  # the curve's smaller points are scored the way the full-size one is
    original = Adapter.evaluate
    monkeypatch.setattr(
        Adapter,
        "evaluate",
        lambda self, *a, **k: scored_calibrated.append(self.contextual_calibration) or original(self, *a, **k),
    )
    adapter = adapt(
        base, examples, spec=TASK.spec, init=None, steps=3, examples_needed_for=0.9, contextual_calibration=True
    )
    assert scored_calibrated == [True, True]
    estimate = adapter.record.examples_needed
    n_train, n_held = adapter.record.fit.n_train, adapter.record.fit.n_held_out
    assert [size for size, _ in estimate["points"]] == [n_train // 4, n_train // 2, n_train]  # a quarter, a half, all
    assert estimate["points"][-1][1] == adapter.record.metrics["held_out_accuracy"]
    assert estimate["target"] == 0.9 and f"{n_held} held-out examples" in estimate["note"]

    def loaded() -> set[str]:  # "_empty" stands in when the last adapter goes (PEFT cannot delete it)
        return set(base.peft.peft_config) - {"_empty"}

    assert loaded() - names_before == {adapter.peft_name}  # the trial adapters of the curve were freed
    adapter.unload()
    assert loaded() == names_before - {"_empty"}
    with pytest.raises(ShopLoRAError, match="at least 32 examples"):
        adapt(base, examples[:20], spec=TASK.spec, init=None, steps=1, examples_needed_for=0.9)
    with pytest.raises(ShopLoRAError, match="between 0 and 1"):
        adapt(base, examples, spec=TASK.spec, init=None, steps=1, examples_needed_for=80)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None,
    reason="a 4-bit (NF4) base needs a CUDA GPU and bitsandbytes",
)
def test_adapt_on_a_four_bit_base(tiny_model_dir, tmp_path):
    quantized = load_base(str(tiny_model_dir), dtype="bfloat16", quantization="4bit")
    adapter = adapt(quantized, EXAMPLES, spec=TASK.spec, init=None, steps=4, lr=1e-2)
    assert adapter.record.fit.steps_run >= 1 and all(loss == loss for loss in adapter.record.fit.train_loss)  # no NaN
    assert {p.label for p in adapter.predict(TEST_INPUTS)} <= set(TASK.spec.labels)
    store = AdapterStore(tmp_path)
    store.save(adapter, "nf4")
    again = store.load("nf4", quantized)
    assert [p.label for p in again.predict(TEST_INPUTS)] == [p.label for p in adapter.predict(TEST_INPUTS)]


def _answer(index: int, margin: float = 5.0) -> list[float]:
    """Label scores that answer label `index` of TASK by `margin`."""
    return [margin if j == index else 0.0 for j in range(len(TASK.spec.labels))]


def _scores_by_step(monkeypatch, row) -> list[int]:
    """Make each held-out check see `row(steps trained so far, gold label index)` as an input's label scores,
    whatever the tiny model says: the selection is then known. Returns the steps run (clear it to script another
    run)."""
    from adapters import Adapter

    gold = {e.input: TASK.spec.labels.index(e.output) for e in TASK.examples("train")}
    steps = []
    fit_module = importlib.import_module("adapters.fit")
    original_train = fit_module.train_steps

    def counting_train(*args, on_step=None, **kwargs):
        def step(i, loss):
            steps.append(i)
            return on_step(i, loss) if on_step else False

        return original_train(*args, on_step=step, **kwargs)

    def scores(self, inputs, *args, **kwargs):
        return [row(len(steps), gold[text]) for text in inputs]

    monkeypatch.setattr(fit_module, "train_steps", counting_train)
    monkeypatch.setattr(Adapter, "label_scores", scores)
    return steps


def _scripted_scores(monkeypatch, answer_after_start, answer_at_start=lambda g: g) -> list[int]:
    """Make the held-out checks see `answer_at_start(gold index)` (default: right) from the starting weights and
    `answer_after_start` once training has begun (see _scores_by_step)."""
    return _scores_by_step(monkeypatch, lambda step, g: _answer(answer_after_start(g) if step else answer_at_start(g)))


def test_adapting_never_keeps_weights_worse_than_the_start(base, adapter, monkeypatch, tmp_path):
    init = save_init(adapter, tmp_path / "init", InitRecord())
    steps = _scripted_scores(monkeypatch, lambda g: 0)  # after the first step every answer is the first label
    examples = TASK.examples("train")[:40]
    with pytest.warns(AdaptationWarning) as caught:
        worse = adapt(base, examples, spec=TASK.spec, init=init, steps=4, lr=1e-2)
    record = worse.record
    assert record.fit.steps_kept == 0 and record.metrics["held_out_accuracy"] == 1.0
    assert record.metrics["held_out_accuracy_before"] == 1.0 and record.metrics["held_out_accuracy_last"] < 0.3
    start = adapter.state()
    assert all(torch.equal(start[k], worse.state()[k]) for k in start)  # exactly the starting weights
    assert any("fell while adapting" in m and "starting weights were kept" in m for m in record.warnings)
    fit_warnings = [m for m in record.warnings if "fell" in m or "takes most" in m]
    assert [str(w.message) for w in caught if w.category is AdaptationWarning] == fit_warnings
    worse.unload()
    steps.clear()
    last = adapt(base, examples, spec=TASK.spec, init=init, steps=4, lr=1e-2, keep="last")
    assert last.record.fit.steps_kept == 4 and last.record.metrics["held_out_accuracy"] < 0.3
    assert any("as asked" in m for m in last.record.warnings)
    assert any(not torch.equal(start[k], last.state()[k]) for k in start)
    last.unload()


def test_a_collapse_onto_one_label_is_reported_with_a_per_label_table(base, monkeypatch):
    _scripted_scores(monkeypatch, lambda g: 3, lambda g: 3)  # every step, the start too, answers the fourth label
    examples = TASK.examples("train")[:40]
    with pytest.warns(AdaptationWarning, match="one label takes most held-out answers"):
        collapsed = adapt(base, examples, spec=TASK.spec, init=None, steps=2, lr=1e-2)
    per_label = collapsed.record.metrics["held_out_per_label"]
    fourth = TASK.spec.labels[3]
    assert per_label[fourth]["answered"] == collapsed.record.fit.n_held_out
    assert sum(row["right_after"] for row in per_label.values()) == per_label[fourth]["n"]
    collapsed.unload()


def test_a_run_that_diverges_is_refused_and_leaves_nothing_behind(base):
    names = set(base.peft.peft_config)
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        adapt(base, EXAMPLES, spec=TASK.spec, init=None, steps=3, lr=1e9)
    assert set(base.peft.peft_config) - {"_empty"} == names - {"_empty"}


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"labels": "a,b,c"}, "labels must be a list"),
        ({"steps": 0}, "steps must be a whole number >= 1"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"lr": 0}, "lr must be a number > 0"),
        ({"lr": -1e-3}, "lr must be a number > 0"),
        ({"seed": "x"}, "seed must be a whole number"),
        ({"keep": "first"}, "keep must be one of best, last"),
    ],
)
def test_adapt_refuses_misread_arguments(base, kwargs, problem):
    with pytest.raises(ShopLoRAError, match=problem):
        adapt(base, EXAMPLES, **{"instruction": "x", "init": None, **kwargs})


@pytest.mark.parametrize(
    "call, problem",
    [
        (lambda base, adapter: AdapterStore(None), r"AdapterStore\(root\): root must be a folder path, got None"),
        (lambda base, adapter: adapter.predict([None]), r"inputs\[0\] is None \(NoneType\), not a text"),
        (lambda base, adapter: adapter.predict(["where is it", 3]), r"inputs\[1\] is 3 \(int\), not a text"),
        (lambda base, adapter: adapter.predict(EXAMPLES[:1]), r"inputs\[0\] is Example\(.*pass example\.input"),
        (lambda base, adapter: adapter.generate(None), r"inputs must be a text or a list of texts, got a NoneType"),
        (
            lambda base, adapter: adapt(base, {"input": "where is it", "output": "track"}, instruction="x", init=None),
            r"examples is one dict \(keys 'input', 'output'\), not a list of them",
        ),
    ],
    ids=["store-none", "predict-none", "predict-int", "predict-example", "generate-none", "adapt-dict"],
)
def test_the_python_api_names_the_bad_argument(base, adapter, call, problem):
    with pytest.raises(ShopLoRAError, match=problem):
        call(base, adapter)


def test_an_unloaded_adapter_says_so_instead_of_a_peft_error(base):
    unloaded = Adapter(base, TASK.spec, None, LoraSettings(r=4), AdapterRecord(spec=TASK.spec))
    unloaded.unload()
    for use in (
        lambda: unloaded.predict(["where is my parcel"]),
        unloaded.state,
        lambda: unloaded.generate(["where is my parcel"]),
    ):
        with pytest.raises(ShopLoRAError, match=r"this adapter was unloaded .*load it again"):
            use()
    unloaded.unload()  # a second unload changes nothing


def test_refit_trains_again_on_every_example_for_the_steps_kept(base, monkeypatch):
    steps = _scripted_scores(monkeypatch, lambda g: g, lambda g: 0)  # wrong at the start, right once trained
    examples = TASK.examples("train")[:40]
    recipe = Recipe(lr=1e-2, min_steps=4, max_steps=4, refit=True)
    refitted = adapt(base, examples, spec=TASK.spec, init=None, recipe=recipe)
    assert refitted.record.fit.steps_kept == 4 and refitted.record.fit.refit_steps == 4
    assert len(steps) == 8  # 4 choosing steps, then 4 on all 40 examples
    chosen = adapt(base, examples, spec=TASK.spec, init=None, recipe=replace(recipe, refit=False))
    assert chosen.record.fit.refit_steps == 0
    assert any(not torch.equal(refitted.state()[k], chosen.state()[k]) for k in chosen.state())
    refitted.unload(), chosen.unload()
    steps.clear()
    _scripted_scores(monkeypatch, lambda g: 0)  # the start is best: nothing to refit
    kept_start = adapt(base, examples, spec=TASK.spec, init=None, recipe=recipe)
    assert kept_start.record.fit.steps_kept == 0 and kept_start.record.fit.refit_steps == 0
    kept_start.unload()
