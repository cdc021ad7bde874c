"""`adapt`: learn a new scenario from a handful of examples, starting from a trained LoRA init.

Inits differ only in `init`: the shipped default ("default": the multi-task init for the embedded model), the meta
init (`"smollm2-135m-meta"`), a folder from meta-training, or `None` (PEFT's standard LoRA init). How long it trains
and which weights it keeps follow adapters.recipe, whatever the init.
"""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

from prompts import Example, ShopLoRAError, TaskSpec, load_examples
from prompts.render import answer_ids, render

from .adapter import Adapter
from .base import Base
from .continual import remember_scenario, replay_buffer
from .fit import AdaptationWarning, Budget, Phase, Progress, Watch, budget_for, fit
from .init_catalog import DEFAULT, resolve_init
from .learning_curve import examples_needed
from .lora import LoraSettings
from .recipe import DEFAULT_RECIPE, Recipe, held_out_split
from .record import AdapterRecord
from .specs import (
    LabelCoverageWarning,
    check_arguments,
    examples_digest,
    label_coverage_warnings,
    calibration_choice,
    needs_calibration,
    spec_labels,
    task_spec,
)
from .training import train_steps


def adapt(
    base: Base,
    examples: Any,
    *,
    instruction: str | None = None,
    labels: Sequence[str] | None = None,
    kind: str | None = None,
    spec: TaskSpec | None = None,
    scenario: str = "custom",
    init: str | Path | None = DEFAULT,
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    columns: dict[str, str] | None = None,
    progress: Progress | None = None,
    watch: Watch | None = None,
    examples_needed_for: float | None = None,
    contextual_calibration: str | bool = "auto",
    keep: str = "best",
    recipe: Recipe | None = None,
    phase: Phase | None = None,
) -> Adapter:
    """Fine-tune a LoRA adapter on `examples` (a JSONL/CSV path, a list, a datasets.Dataset) from `init`.

    Example: `adapt(base, "returns.jsonl", instruction="Classify the customer's message.", labels=[...])`.
    Training runs `recipe`'s budget (default: 8 epochs over the examples, 24 to 96 steps of 16, lr 5e-4; see
    adapters.recipe), or exactly `steps`. With 16 or more examples a stratified fifth is held out: the weights kept
    are the checked step (the start among them) with the best held-out accuracy, so adapting never keeps weights
    worse there than it started from (`keep="last"`: the last step's, whatever they score); classify confidences
    are calibrated on them. A drop in held-out accuracy or a collapse onto one label is recorded in
    `adapter.record.warnings` and warned about (AdaptationWarning). `scenario` names the task inside the adapter
    (`update` can add more scenarios later). `watch(adapter, steps_done)` sees the adapter before the first step and
    after each one (the evaluation benchmark scores it there); `phase(name, step, steps)` hears the work between
    steps (held-out scoring, the refit; see Phase). `examples_needed_for=0.8` (a classify task with at least
    32 examples) also estimates how many training examples reach that held-out accuracy: two more short
    adaptations on a quarter and half of the training split give a learning curve (`record.examples_needed`).
    `contextual_calibration` (classify): label scores divide out the labels' prior on content-free inputs (see
    adapters.scoring), so labels without an example are still predicted: "auto" (the default) turns it on exactly
    when some label has no example, "always" / "never" force it (True / False, and None for "auto", still work).
    """
    import torch

    started = time.perf_counter()
    check_arguments(labels=labels, steps=steps, lr=lr, seed=seed, keep=keep)
    contextual_calibration = calibration_choice(contextual_calibration)  # a bad choice fails before the data loads
    examples = load_examples(examples, columns=columns, labels=labels or spec_labels(spec))  # files and lists alike
    spec = spec or task_spec(examples, instruction, labels, kind, name=scenario)
    if examples_needed_for is not None:
        _check_estimate(spec, len(examples), examples_needed_for)
    init_files = resolve_init(init, base)
    if init_files is not None:
        settings, state = init_files.settings, init_files.state
        init_name = init_files.record.name or str(init_files.path)
    else:
        settings, state, init_name = LoraSettings(), None, "standard"
    recipe = recipe or DEFAULT_RECIPE

    torch.manual_seed(seed)  # the standard init's random A matrices
    # the split _fit makes (its rng's first use): a label whose only example is held out is never trained on
    held_out, train = held_out_split(examples, random.Random(seed), classify=spec.kind == "classify")
    calibrated = needs_calibration(spec, train, contextual_calibration)
    record = AdapterRecord(
        spec=spec,
        init=init_name,
        recipe=recipe,
        n_examples=len(examples),
        examples_sha256=examples_digest(examples),
        seed=seed,
        contextual_calibration=calibrated,
        warnings=label_coverage_warnings(spec, train, calibrated=calibrated),
    )
    for message in record.warnings:
        warnings.warn(message, LabelCoverageWarning, stacklevel=2)
    adapter = Adapter(base, spec, state, settings, record)
    rng = random.Random(seed)
    try:
        budget = budget_for(recipe, steps, lr)
        fitted = fit(
            adapter,
            examples,
            budget,
            rng,
            progress,
            watch,
            keep=keep,
            refit=recipe.refit and keep == "best",
            phase=phase,
        )
    except BaseException:  # a refused input, a diverged run, Ctrl-C: nothing of it stays on the base model
        adapter.unload()
        raise
    record.fit = fitted
    record.warnings += fitted.warnings
    for message in fitted.warnings:
        warnings.warn(message, AdaptationWarning, stacklevel=2)
    if examples_needed_for is not None:
        points = [
            *_subset_scores(base, spec, state, settings, train, held_out, budget, seed, calibrated),
            (len(train), fitted.metrics["held_out_accuracy"]),
        ]
        record.examples_needed = _examples_needed(points, examples_needed_for, len(held_out))
    record.replay = replay_buffer([], 0, examples, spec.name, rng)
    record.seconds = round(time.perf_counter() - started, 2)
    record.created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    remember_scenario(adapter)
    return adapter


MIN_FOR_ESTIMATE = 32  # examples: a curve needs three training sizes and a held-out share worth scoring


def _check_estimate(spec: TaskSpec, n: int, target: float) -> None:
    if spec.kind != "classify":
        raise ShopLoRAError(
            f"examples_needed_for needs a classify task (this one is {spec.kind}): it fits the held-out accuracy"
        )
    if n < MIN_FOR_ESTIMATE:
        raise ShopLoRAError(
            f"examples_needed_for needs at least {MIN_FOR_ESTIMATE} examples to fit a learning curve, "
            f"got {n}; label more or leave it out"
        )
    if not 0 < target < 1:
        raise ShopLoRAError(f"examples_needed_for is a target accuracy between 0 and 1, got {target}")


def _subset_scores(
    base: Base,
    spec: TaskSpec,
    state: dict[str, Any] | None,
    settings: LoraSettings,
    train: Sequence[Example],
    held_out: Sequence[Example],
    budget: Budget,
    seed: int,
    calibrated: bool,
) -> list[tuple[int, float]]:
    """Held-out accuracy after the budget adapt gives a quarter and a half of the training split, from the same init
    and scored the same way (`calibrated`): the smaller points of the learning curve."""
    import torch

    points = []
    for size in (len(train) // 4, len(train) // 2):
        torch.manual_seed(seed)
        trial = Adapter(base, spec, state, settings, AdapterRecord(spec=spec, contextual_calibration=calibrated))
        try:
            rendered = [render(spec, e, base.tokenizer) for e in train[:size]]
            with base.lock:
                trial.activate()
                loop = budget(size)
                label_ids = (
                    [answer_ids(label, base.tokenizer) for label in spec.labels] if loop.loss == "labels" else None
                )
                train_steps(
                    base.peft,
                    rendered,
                    loop,
                    pad_id=base.tokenizer.pad_token_id,
                    rng=random.Random(seed),
                    name=trial.peft_name,
                    labels=label_ids,
                )
            points.append((size, trial.evaluate(held_out)["accuracy"]))
        finally:
            trial.unload()
    return points


def _examples_needed(points: Sequence[tuple[int, float]], target: float, n_held_out: int) -> dict[str, Any]:
    estimate = examples_needed({0: points}, target, n_scored=n_held_out)
    note = estimate.note("this task") if estimate else "no estimate: the curve has a single size"
    return {
        **(estimate.to_dict() if estimate else {}),
        "target": target,
        "points": [list(point) for point in points],
        "note": f"{note} (training examples; one adaptation per size, scored on {n_held_out} held-out "
        "examples: a rough guide)",
    }
