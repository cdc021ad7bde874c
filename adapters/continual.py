"""Continual learning: `update` teaches an adapter more examples or a new scenario, replaying a bounded sample of
what it learned before so it does not forget; the replay buffer and the scenarios an adapter remembers."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

from prompts import Example, ShopLoRAError, TaskSpec, infer_labels, load_examples

from .fit import Progress, budget_for, fit
from .lora import load_lora_state, remove_lora
from .recipe import DEFAULT_RECIPE
from .record import ReplayRow, Scenario, Update
from .specs import check_arguments, examples_digest, spec_labels, task_spec

if TYPE_CHECKING:
    from .adapter import Adapter


def update(
    adapter: "Adapter",
    examples: Any,
    *,
    labels: Sequence[str] | None = None,
    instruction: str | None = None,
    scenario: str | None = None,
    spec: TaskSpec | None = None,
    kind: str | None = None,
    own_weights: bool | None = None,
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    replay: bool = True,
    columns: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> "Adapter":
    """Continue training `adapter` on new examples without erasing what it knew.

    Without `instruction`/`spec` the examples extend the current scenario (new labels of a classify task join its label
    set). The earlier examples the adapter kept of this scenario train with them and share the stratified held-out
    check, so the weights kept are those that learned the new examples without forgetting the old; a sample of other
    scenarios' kept examples is replayed too, each under its own scenario's instruction. With `instruction=` and
    `scenario="name"` (or a `spec`) they start a new scenario, which the adapter then answers by default;
    `adapter.scenario(name)` answers an earlier one. A new scenario gets its own copy of the weights to train (starting
    from the current ones), so earlier scenarios keep exactly what they learned; `own_weights=False` trains the shared
    weights with replay instead (one LoRA in all, some forgetting).
    """
    started = time.perf_counter()
    check_arguments(labels=labels, steps=steps, lr=lr, seed=seed)
    remember_scenario(adapter)
    before = (adapter.spec, adapter.temperature, adapter.peft_name)  # put back if the update is refused
    new_scenario = spec is not None or instruction is not None
    if own_weights and not new_scenario:
        raise ShopLoRAError(
            "own_weights=True is for a new scenario: pass instruction= and scenario= too (examples "
            "for the current scenario always train its weights)"
        )
    if not new_scenario:
        examples = load_examples(examples, columns=columns)
        spec = adapter.spec
        if spec.kind == "classify":
            added = [label for label in (*(labels or ()), *infer_labels(examples)) if label not in spec.labels]
            spec = replace(spec, labels=(*spec.labels, *dict.fromkeys(added)))
    else:
        examples = load_examples(examples, columns=columns, labels=labels or spec_labels(spec))
        if spec is None:
            if not scenario:
                raise ShopLoRAError(
                    'a new instruction starts a new scenario: name it, e.g. scenario="returns-de" '
                    "(or leave out instruction= to add examples to the current scenario)"
                )
            spec = task_spec(examples, instruction, labels, kind, name=scenario)
        if spec.name in adapter.scenarios:
            raise ShopLoRAError(
                f"the adapter already has a scenario {spec.name!r}: pick another name, or leave out "
                "instruction= to add examples to the current scenario"
            )
        adapter.temperature = 1.0  # the earlier scenario's calibration does not carry over
        if own_weights is not False:
            adapter.peft_name = adapter.new_weights(adapter.state())
            replay = False  # these weights answer only the new scenario
    adapter.spec = spec  # replayed rows of this scenario render with it (scenario(own name) is the adapter itself)
    record = adapter.record
    rng = random.Random(seed)
    earlier = record.replay
    own, replayed = replay_rows(adapter, earlier, spec.name, len(examples), rng) if replay else ([], [])
    recipe = record.recipe or DEFAULT_RECIPE
    trained_in_place = adapter.peft_name == before[2]
    weights = adapter.state() if trained_in_place else None  # a failure midway must not leave them half-trained
    try:
        fitted = fit(adapter, [*examples, *own], budget_for(recipe, steps, lr), rng, progress, replayed=replayed)
    except BaseException:  # a refused input, an OOM, Ctrl-C: the adapter stays as it was, new weights dropped
        with adapter.base.lock:
            if trained_in_place:
                load_lora_state(adapter.base.peft, weights, adapter.peft_name)
            else:
                remove_lora(adapter.base, adapter.peft_name)
        adapter.spec, adapter.temperature, adapter.peft_name = before
        raise
    record.updates.append(
        Update(
            scenario=spec.name,
            n_examples=len(examples),
            n_replayed=len(own) + len(replayed),
            examples_sha256=examples_digest(examples),
            fit=fitted,
            seconds=round(time.perf_counter() - started, 2),
        )
    )
    record.replay = replay_buffer(earlier, record.n_examples, examples, spec.name, rng)
    record.n_examples += len(examples)
    remember_scenario(adapter)
    return adapter


def remember_scenario(adapter: "Adapter") -> None:
    """Record the current scenario (spec and calibration) so `adapter.scenario(name)` finds it, saved or not."""
    adapter.record.spec = adapter.spec
    adapter.record.temperature = adapter.temperature
    adapter.record.scenarios[adapter.spec.name] = Scenario(adapter.spec, adapter.temperature)
    adapter.weights[adapter.spec.name] = adapter.peft_name


def replay_rows(
    adapter: "Adapter", earlier: Sequence[ReplayRow], scenario: str, n_new: int, rng: random.Random
) -> tuple[list[Example], list[tuple[TaskSpec, Example]]]:
    """What an update replays: (every kept example of `scenario`, a sample of the other scenarios' rows with their
    specs). The scenario's own rows join the new examples in the fit, so its stratified held-out part holds old
    labels too and model selection sees forgetting (chosen on the new examples alone, it kept steps that learned the
    new labels and forgot old ones: docs/discovery.md). The other scenarios' rows only anchor the
    shared weights; as many as the new examples (at least 8) keep the update's cost following its data."""
    # rows saved before scenarios were recorded belong to the current one
    own = [row.example for row in earlier if (row.scenario or scenario) == scenario]
    others = [row for row in earlier if (row.scenario or scenario) != scenario]
    sampled = rng.sample(others, min(len(others), max(n_new, 8)))
    return own, [(adapter.scenario(row.scenario).spec, row.example) for row in sampled]


REPLAY_SIZE = 256  # examples kept in an adapter for replay: enough to anchor a few scenarios, small on disk


def replay_buffer(
    earlier: Sequence[ReplayRow], n_seen: int, new: Sequence[Example], scenario: str, rng: random.Random
) -> list[ReplayRow]:
    """A uniform sample of at most REPLAY_SIZE of every example seen so far, each with its scenario: reservoir
    sampling (Algorithm R) over the `n_seen` examples behind `earlier` and then `new`, so an example of the first
    scenario is as likely to be kept as one of the last."""
    buffer = list(earlier)
    for seen, example in enumerate(new, start=n_seen):
        row = ReplayRow(example, scenario)
        if len(buffer) < REPLAY_SIZE:
            buffer.append(row)
        elif (slot := rng.randrange(seen + 1)) < REPLAY_SIZE:
            buffer[slot] = row
    return buffer
