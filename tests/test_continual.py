"""Continual updates: new scenarios join an adapter, replay keeps the earlier ones, BWT measures forgetting."""

from __future__ import annotations

import pytest

from adapters import AdapterStore, adapt, load_base
from adapters.metrics import backward_transfer
from prompts import Example, ShopLoRAError

SCENARIOS = [
    [Example(f"order {i} {text}", label) for i in range(10) for text, label in pair]
    for pair in ((("refund please", "money"), ("where is it", "track")),
                 (("skip my box", "skip"), ("pause the plan", "pause")))
]


def test_backward_transfer_on_hand_made_numbers():
    assert backward_transfer([[0.9]]) == 0.0
    assert backward_transfer([[0.9, 0.0], [0.7, 0.8]]) == pytest.approx(-0.2)
    assert backward_transfer([[0.8, 0, 0], [0.8, 0.6, 0], [0.6, 0.7, 0.9]]) == pytest.approx((-0.2 + 0.1) / 2)


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
    update = adapter.record["updates"][0]
    assert update["n_replayed"] == 20 and adapter.record["n_examples"] == 40
    assert len(adapter.record["replay"]) == 40
    without_replay, _ = stream(base, replay=False)
    assert with_replay[0][0] == 1.0 and with_replay[1][1] == 1.0  # each scenario learned
    assert backward_transfer(with_replay) >= -0.01
    assert backward_transfer(with_replay) > backward_transfer(without_replay)  # plain sequential tuning forgets


def test_a_new_scenario_keeps_its_own_instruction_and_the_old_one_answers(base, tmp_path):
    adapter = adapt(base, SCENARIOS[0], instruction="Route the message.", init=None, steps=40, lr=1e-2)
    first = adapter.spec.name
    adapter.update(SCENARIOS[1], instruction="Which subscription change is asked for?", scenario="subscriptions",
                   steps=40, lr=1e-2)
    assert adapter.scenarios == [first, "subscriptions"] and adapter.spec.labels == ("skip", "pause")
    old = adapter.scenario(first)
    assert old.spec.instruction == "Route the message." and old.spec.labels == ("money", "track")
    assert adapter.evaluate(SCENARIOS[1])["accuracy"] == 1.0
    assert old.evaluate(SCENARIOS[0])["accuracy"] == 1.0  # replayed under its own instruction: not forgotten
    rows = adapter.record["replay"]
    assert {row["scenario"] for row in rows} == {first, "subscriptions"}
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
    with pytest.raises(ShopLoRAError, match="no scenario 'nope'"):
        adapter.scenario("nope")
    adapter.unload()
