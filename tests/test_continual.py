"""Continual updates: new scenarios join an adapter, replay keeps the earlier ones, BWT measures forgetting."""

from __future__ import annotations

import pytest
import torch

from adapters import AdapterStore, adapt, load_base
from adapters.metrics import backward_transfer
from adapters.record import ReplayRow
from prompts import Example, ShopLoRAError

SCENARIOS = [
    [Example(f"order {i} {text}", label) for i in range(10) for text, label in pair]
    for pair in (
        (("refund please", "money"), ("where is it", "track")),
        (("skip my box", "skip"), ("pause the plan", "pause")),
    )
]


def test_backward_transfer_on_hand_made_numbers():
    assert backward_transfer([[0.9]]) == 0.0
    assert backward_transfer([[0.9, 0.0], [0.7, 0.8]]) == pytest.approx(-0.2)
    assert backward_transfer([[0.8, 0, 0], [0.8, 0.6, 0], [0.6, 0.7, 0.9]]) == pytest.approx((-0.2 + 0.1) / 2)


def test_replay_buffer_keeps_old_and_new_scenarios_alike():
    """Algorithm R: after 512 examples of one scenario and 512 of the next, each half of the 256 kept rows on
    average (sampling the pool of buffer + new examples instead would keep the first scenario at a third)."""
    import random

    from adapters.continual import REPLAY_SIZE, replay_buffer

    first = [Example(f"a{i}", "x") for i in range(2 * REPLAY_SIZE)]
    second = [Example(f"b{i}", "y") for i in range(2 * REPLAY_SIZE)]
    shares = []
    for seed in range(20):
        rng = random.Random(seed)
        buffer = replay_buffer([], 0, first, "first", rng)
        assert len(buffer) == REPLAY_SIZE and len({row.example.input for row in buffer}) == REPLAY_SIZE
        buffer = replay_buffer(buffer, len(first), second, "second", rng)
        assert len(buffer) == REPLAY_SIZE
        shares.append(sum(row.scenario == "first" for row in buffer) / REPLAY_SIZE)
    assert sum(shares) / len(shares) == pytest.approx(0.5, abs=0.03)
    assert replay_buffer([], 0, first[:3], "first", random.Random(0)) == [
        ReplayRow(e, "first") for e in first[:3]
    ]  # under the bound every example is kept, in order


@pytest.fixture
def base(tiny_model_dir):
    return load_base(str(tiny_model_dir), device="cpu")


def stream(base, replay: bool) -> list[list[float]]:
    adapter = adapt(base, SCENARIOS[0], instruction="Route the message.", init=None, steps=40, lr=1e-2)
    accuracy = [[adapter.evaluate(SCENARIOS[0])["accuracy"]]]
    adapter.update(SCENARIOS[1], steps=40, lr=1e-2, replay=replay)
    accuracy.append([adapter.evaluate(s)["accuracy"] for s in SCENARIOS])
    return accuracy, adapter


def test_update_adds_labels_and_replay_prevents_forgetting(base):
    with_replay, adapter = stream(base, replay=True)
    assert adapter.spec.labels == ("money", "track", "skip", "pause")
    update = adapter.record.updates[0]
    assert update.n_replayed == 20 and adapter.record.n_examples == 40
    assert len(adapter.record.replay) == 40
    without_replay, _ = stream(base, replay=False)
    assert with_replay[0][0] == 1.0 and with_replay[1][1] == 1.0  # each scenario learned
    assert backward_transfer(with_replay) >= -0.01
    assert backward_transfer(with_replay) > backward_transfer(without_replay)  # plain sequential tuning forgets


def test_an_update_chooses_its_weights_on_old_labels_too(base):
    """More examples of the current scenario: every kept example of it trains again and the stratified held-out
    check holds old labels too, so the step kept is chosen against forgetting, not only on the new labels."""
    old = [
        Example(f"order {i} {text}", label)
        for i in range(20)
        for text, label in (("refund", "money"), ("where", "track"))
    ]
    adapter = adapt(base, old, instruction="Route the message.", init=None, steps=20, lr=1e-2)
    new = SCENARIOS[1][:6]  # 3 of each new label: alone too few for any held-out check
    adapter.update(new, steps=10, lr=1e-2)
    update = adapter.record.updates[0]
    assert update.n_replayed == len(old)  # all 40 kept rows, not a sample the size of the 6 new ones
    held_out = update.fit.metrics["held_out_per_label"]
    assert {"money", "track"} <= set(held_out) and {"skip", "pause"} <= set(held_out)
    assert update.fit.n_held_out + update.fit.n_train == len(old) + len(new)
    adapter.unload()


@pytest.mark.parametrize("own_weights", [True, False], ids=["own-weights", "shared-with-replay"])
def test_a_new_scenario_keeps_its_own_instruction_and_the_old_one_answers(base, tmp_path, own_weights):
    adapter = adapt(base, SCENARIOS[0], instruction="Route the message.", init=None, steps=40, lr=1e-2)
    first = adapter.spec.name
    adapter.update(
        SCENARIOS[1],
        instruction="Which subscription change is asked for?",
        scenario="subscriptions",
        own_weights=own_weights,
        steps=40,
        lr=1e-2,
    )
    assert adapter.record.updates[0].n_replayed == (0 if own_weights else 20)
    assert adapter.scenarios == [first, "subscriptions"] and adapter.spec.labels == ("skip", "pause")
    old = adapter.scenario(first)
    assert old.spec.instruction == "Route the message." and old.spec.labels == ("money", "track")
    assert adapter.evaluate(SCENARIOS[1])["accuracy"] == 1.0
    assert old.evaluate(SCENARIOS[0])["accuracy"] == 1.0  # own weights, or replayed under its own instruction
    rows = adapter.record.replay
    assert {row.scenario for row in rows} == {first, "subscriptions"}
    again = AdapterStore(tmp_path).load(AdapterStore(tmp_path).save(adapter, "two-scenarios").name, base)
    assert again.scenarios == adapter.scenarios
    assert again.scenario(first).predict(["order 3 refund please"])[0].label == "money"
    again.unload()


def test_scenario_mistakes_are_clear(base):
    adapter = adapt(base, SCENARIOS[0], instruction="Route the message.", init=None, steps=2)
    with pytest.raises(ShopLoRAError, match="name it"):
        adapter.update(SCENARIOS[1], instruction="Another job.")
    with pytest.raises(ShopLoRAError, match="already has a scenario"):
        adapter.update(SCENARIOS[1], instruction="Another job.", scenario=adapter.spec.name)
    with pytest.raises(ShopLoRAError, match="task name '../x' is not allowed"):
        adapter.update(SCENARIOS[1], instruction="Another job.", scenario="../x")
    with pytest.raises(ShopLoRAError, match="own_weights=True is for a new scenario"):
        adapter.update(SCENARIOS[1], own_weights=True)
    n_adapters = len(base.peft.peft_config)
    long = [Example("where is my parcel " * 200, "skip"), *SCENARIOS[1][:3]]  # over the tiny model's 1024 tokens
    with pytest.raises(ShopLoRAError, match="over the model's context"):
        adapter.update(long, instruction="Another job.", scenario="too-long")
    assert adapter.scenarios == [adapter.spec.name] and len(adapter.weights) == 1  # refused updates change nothing
    assert adapter.spec.instruction == "Route the message." and len(base.peft.peft_config) == n_adapters

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C (or an OOM) mid-update rolls back the same way
        adapter.update(SCENARIOS[1], instruction="Another job.", scenario="interrupted", progress=interrupt)
    assert adapter.scenarios == [adapter.spec.name] and len(base.peft.peft_config) == n_adapters
    assert adapter.spec.instruction == "Route the message."
    weights = adapter.state()  # more examples of the current scenario train its weights in place: put back too
    with pytest.raises(KeyboardInterrupt):
        adapter.update(SCENARIOS[0][:4], progress=interrupt, lr=1e-2)
    assert all(torch.equal(weights[key], tensor) for key, tensor in adapter.state().items())
    with pytest.raises(ShopLoRAError, match="no scenario 'nope'"):
        adapter.scenario("nope")
    adapter.unload()


def test_own_weights_leave_earlier_scenarios_exactly_as_they_were(base, tmp_path, tiny_model_dir):
    """A scenario with its own weights cannot be forgotten: the earlier scenario scores the same bit for bit, the
    saved folder holds both weight sets (each loadable in plain PEFT) and loads back with the same answers."""
    from peft import PeftModel

    adapter = adapt(base, SCENARIOS[0], instruction="Route the message.", init=None, steps=20, lr=1e-2)
    first = adapter.spec.name
    probe = ["order 3 refund please", "order 5 where is it"]
    before = adapter.label_scores(probe)
    adapter.update(
        SCENARIOS[1], instruction="Which subscription change is asked for?", scenario="subscriptions", steps=20, lr=1e-2
    )
    assert adapter.scenario(first).label_scores(probe) == before
    assert adapter.weights[first] != adapter.weights["subscriptions"] == adapter.peft_name
    store = AdapterStore(tmp_path)
    folder = store.save(adapter, "two-weights")
    assert (folder / "scenarios" / first / "adapter_model.safetensors").is_file()
    record = store.show("two-weights")
    assert record.scenarios[first].weights == f"scenarios/{first}"
    assert record.scenarios["subscriptions"].weights == "."
    assert f"{first} (scenarios/{first}/), subscriptions (these weights)" in (folder / "README.md").read_text()
    again = store.load("two-weights", base)
    flat = lambda rows: [x for row in rows for x in row]  # noqa: E731 - approx compares flat lists only
    assert flat(again.scenario(first).label_scores(probe)) == pytest.approx(flat(before), abs=1e-5)
    assert flat(again.label_scores(probe)) == pytest.approx(flat(adapter.label_scores(probe)), abs=1e-5)
    plain = PeftModel.from_pretrained(
        load_base(str(tiny_model_dir), device="cpu").model, str(folder / "scenarios" / first)
    )
    ids = torch.tensor([base.tokenizer("order 3 refund please")["input_ids"]])
    with base.lock:
        ours = adapter.scenario(first).activate()(input_ids=ids).logits
    torch.testing.assert_close(plain(input_ids=ids).logits, ours)
    n_adapters = len(base.peft.peft_config)
    again.unload()
    assert len(base.peft.peft_config) == n_adapters - 2  # both weight sets freed
    adapter.unload()
