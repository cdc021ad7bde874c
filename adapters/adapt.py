"""`adapt`: learn a new scenario from a handful of examples, starting from a trained LoRA init.

Inits differ only in `init`: the shipped default ("default": the multi-task init for the embedded model), the meta
init (`"smollm2-135m-meta"`), a folder from meta-training, or `None` (PEFT's standard LoRA init). How long it trains
and which weights it keeps follow adapters.recipe, whatever the init.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from prompts import Example, ShopLoRAError, TaskSpec, infer_labels, load_examples
from prompts.render import answer_ids, render

from .adapter import Adapter
from .base import Base
from .generation import check_context
from .inits import DEFAULT, resolve_init
from .learning_curve import examples_needed
from .lora import LoraSettings, load_lora_state, lora_state, remove_lora
from .metrics import expected_calibration_error, fit_temperature, softmax
from .recipe import DEFAULT_RECIPE, Recipe, held_out_split
from .training import InnerLoop, mean_loss, train_steps

Progress = Callable[[int, int, float], None]  # (step, total steps, loss)
Watch = Callable[[Adapter, int], None]  # (adapter, steps done): at 0 and after each step, e.g. to score it as it learns
# (phase, step, steps): what runs between training steps, for a UI to name it: "scoring before" (the held-out check
# of the starting weights), "scoring" (the check after `step` of `steps`), "refitting" (step of steps of the run on
# every example, see Recipe.refit), "scoring after" (the kept weights' held-out metrics and calibration).
Phase = Callable[[str, int, int], None]
# Choosing among several checkpoints needs this many held-out examples: on 3 (k=16) one answer decides, and picking
# a step by such noise decided the evaluation's k=16 column (runs stopped after 4 of 12 steps and lost 20 points).
# With fewer, the only candidates are the starting weights and the last step.
MIN_HELD_OUT_FOR_SELECTION = 8
CHECKS = 8  # held-out checks over a run (with enough held out)
PATIENCE = 3  # checks without a better held-out loss or accuracy before stopping early
KEEP = ("best", "last")
# A label "takes" the held-out answers when it is predicted for at least this share of them and at least twice as
# often as it is the right answer: the adapter has learned one answer, not the task.
COLLAPSE_SHARE = 0.6


class AdaptationWarning(UserWarning):
    """Adapting did not help on the held-out examples: accuracy fell, or one label took most answers (also in the
    adapter's record["warnings"])."""


def task_spec(examples: Sequence[Example], instruction: str | None, labels: Sequence[str] | None,
              kind: str | None, name: str = "custom") -> TaskSpec:
    """The spec of a user's task. Without `kind`: classify when labels are given or the answers repeat as short
    labels, extract when every answer is a JSON object, generate otherwise."""
    if not instruction or not instruction.strip():
        raise ShopLoRAError("the instruction is empty: say what the model should do, e.g. "
                            "\"Classify the customer's message.\"")
    if kind is None:
        outputs = [e.output for e in examples]
        if labels:
            kind = "classify"
        elif all(_is_json_object(o) for o in outputs):
            kind = "extract"
        elif len(set(outputs)) < len(outputs) and all(len(o.split()) <= 4 for o in outputs):
            kind = "classify"
        else:
            kind = "generate"
    if kind == "classify":
        labels = tuple(labels) if labels else infer_labels(examples)
    return TaskSpec(name, "custom", kind, instruction.strip(), labels=tuple(labels or ()) if kind == "classify" else ())


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _spec_labels(spec: TaskSpec | None) -> Sequence[str] | None:
    """A classify spec's labels, so examples outside them are refused up front (they could never be predicted)."""
    return spec.labels if spec is not None and spec.kind == "classify" else None


class LabelCoverageWarning(UserWarning):
    """Some labels of a classify task have no example to adapt on (also in the adapter's record["warnings"])."""


def label_coverage_warnings(spec: TaskSpec, examples: Sequence[Example], *, calibrated: bool = True) -> list[str]:
    """Labels of a classify task without a single example: fine-tuning teaches the adapter that only the labels it
    saw exist. Measured on the held-out pet-shop intents (12 labels, 8 examples, 5 support sets, the multi-task
    init, 12 steps): accuracy on test messages whose intent was among the examples rose from 0.37 to 0.64, on the
    others it fell from 0.42 to 0.08; with contextual calibration (`calibrated`) 0.72 and 0.54."""
    missing = labels_without_examples(spec, examples)
    if not missing:
        return []
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    if calibrated:
        return [f"{len(missing)} of {len(spec.labels)} labels have no example ({shown}): contextual calibration keeps "
                "them predictable, but less reliably (on a new shop's intents, 0.54 accuracy on such labels against "
                "0.72 on the others); add at least one example of each label (two from 16 examples up: a fifth is "
                "held out)"]
    return [f"{len(missing)} of {len(spec.labels)} labels have no example ({shown}): after adapting without contextual "
            "calibration they are rarely predicted (on a new shop's intents, 0.08 accuracy on such labels against "
            "0.42 before adapting); add at least one example of each label (two from 16 examples up: a fifth is held "
            "out), or leave contextual calibration on"]


CALIBRATION = {"auto": None, "always": True, "never": False}  # setting names (CLI, eval config) -> needs_calibration


def needs_calibration(spec: TaskSpec, examples: Sequence[Example], setting: bool | None = None) -> bool:
    """Whether a classify task learned from `examples` scores its labels with contextual calibration: `setting`, or
    by default exactly when some label has no example. Measured on the held-out pet-shop intents (8 examples, 5
    support sets, 12 steps; 125 of 200 test messages had an intent without an example): accuracy 0.29 -> 0.61
    (multi-task init) and 0.31 -> 0.56 (meta init). With every label given, a confident adapter's near-zero prior
    for some label can overturn right answers (a scenario updated with replay: 1.0 -> 0.5; pet-shop intents, 36
    examples, 40 steps from the meta init: test accuracy 0.775 -> 0.625 and 0.825 -> 0.725), so it stays off."""
    if spec.kind != "classify":
        return False
    return setting if setting is not None else bool(labels_without_examples(spec, examples))


def labels_without_examples(spec: TaskSpec, examples: Sequence[Example]) -> list[str]:
    """The labels of a classify task (none for other kinds) that no example has as its answer."""
    given = {e.output for e in examples}
    return [label for label in spec.labels if label not in given] if spec.kind == "classify" else []


def examples_digest(examples: Sequence[Example]) -> str:
    """A hash of the examples, recorded so an adapter says exactly what it learned from."""
    blob = json.dumps([e.to_dict() for e in examples], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def adapt(base: Base, examples: Any, *, instruction: str | None = None, labels: Sequence[str] | None = None,
          kind: str | None = None, spec: TaskSpec | None = None, scenario: str = "custom",
          init: str | Path | None = DEFAULT, steps: int | None = None, lr: float | None = None, seed: int = 0,
          columns: dict[str, str] | None = None, progress: Progress | None = None,
          watch: Watch | None = None, examples_needed_for: float | None = None,
          contextual_calibration: bool | None = None, keep: str = "best", recipe: Recipe | None = None,
          phase: Phase | None = None) -> Adapter:
    """Fine-tune a LoRA adapter on `examples` (a JSONL/CSV path, a list, a datasets.Dataset) from `init`.

    Example: `adapt(base, "returns.jsonl", instruction="Classify the customer's message.", labels=[...])`.
    Training runs `recipe`'s budget (default: 8 epochs over the examples, 24 to 96 steps of 16, lr 5e-4; see
    adapters.recipe), or exactly `steps`. With 16 or more examples a stratified fifth is held out: the weights kept
    are the checked step (the start among them) with the best held-out accuracy, so adapting never keeps weights
    worse there than it started from (`keep="last"`: the last step's, whatever they score); classify confidences
    are calibrated on them. A drop in held-out accuracy or a collapse onto one label is recorded in
    record["warnings"] and warned about (AdaptationWarning). `scenario` names the task inside the adapter (`update`
    can add more scenarios later). `watch(adapter, steps_done)` sees the adapter before the first step and after
    each one (the evaluation benchmark scores it there); `phase(name, step, steps)` hears the work between steps
    (held-out scoring, the refit; see Phase). `examples_needed_for=0.8` (a classify task with at least
    32 examples) also estimates how many training examples reach that held-out accuracy: two more short
    adaptations on a quarter and half of the training split give a learning curve (record["examples_needed"]).
    `contextual_calibration` (classify): label scores divide out the labels' prior on content-free inputs (see
    adapters.scoring), so labels without an example are still predicted. None (the default) turns it on exactly when
    some label has no example; True / False force it.
    """
    import torch

    started = time.perf_counter()
    _check_arguments(labels=labels, steps=steps, lr=lr, seed=seed, keep=keep)
    examples = load_examples(examples, columns=columns, labels=labels or _spec_labels(spec))  # files and lists alike
    spec = spec or task_spec(examples, instruction, labels, kind, name=scenario)
    if examples_needed_for is not None:
        _check_estimate(spec, len(examples), examples_needed_for)
    init_files = resolve_init(init, base)
    if init_files is not None:
        settings, state = init_files.settings, init_files.state
        init_name = init_files.record.get("name") or str(init_files.path)
    else:
        settings, state, init_name = LoraSettings(), None, "standard"
    recipe = recipe or DEFAULT_RECIPE

    torch.manual_seed(seed)  # the standard init's random A matrices
    # the split _fit makes (its rng's first use): a label whose only example is held out is never trained on
    held_out, train = held_out_split(examples, random.Random(seed), classify=spec.kind == "classify")
    calibrated = needs_calibration(spec, train, contextual_calibration)
    record: dict[str, Any] = {"kind": "adapter", "spec": spec.to_dict(), "init": init_name,
                              "recipe": recipe.to_dict(), "n_examples": len(examples),
                              "examples_sha256": examples_digest(examples), "seed": seed,
                              "contextual_calibration": calibrated,
                              "warnings": label_coverage_warnings(spec, train, calibrated=calibrated)}
    for message in record["warnings"]:
        warnings.warn(message, LabelCoverageWarning, stacklevel=2)
    adapter = Adapter(base, spec, state, settings, record)
    rng = random.Random(seed)
    try:
        budget = _budget(recipe, steps, lr)
        fitted = _fit(adapter, examples, budget, rng, progress, watch, keep=keep,
                      refit=recipe.refit and keep == "best", phase=phase)
    except BaseException:  # a refused input, a diverged run, Ctrl-C: nothing of it stays on the base model
        adapter.unload()
        raise
    record.update(fitted, warnings=record["warnings"] + fitted["warnings"])
    for message in fitted["warnings"]:
        warnings.warn(message, AdaptationWarning, stacklevel=2)
    if examples_needed_for is not None:
        points = [*_subset_scores(base, spec, state, settings, train, held_out, budget, seed,
                                  calibrated),
                  (len(train), record["metrics"]["held_out_accuracy"])]
        record["examples_needed"] = _examples_needed(points, examples_needed_for, len(held_out))
    record.update(replay=_replay_buffer([], 0, examples, spec.name, rng),
                  seconds=round(time.perf_counter() - started, 2), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    _remember_scenario(adapter)
    return adapter


Budget = Callable[[int], InnerLoop]  # training examples -> the inner loop to run


def _budget(recipe: Recipe, steps: int | None, lr: float | None) -> Budget:
    """The recipe's inner loop for a number of training examples, with the caller's steps (run exactly) and lr."""
    def loop(n_train: int) -> InnerLoop:
        chosen = recipe.loop(n_train)
        return replace(chosen, steps=steps if steps is not None else chosen.steps,
                       lr=lr if lr is not None else chosen.lr)

    return loop


def _check_arguments(*, labels: Any, steps: Any, lr: Any, seed: Any, keep: str = "best") -> None:
    """Refuse arguments that would otherwise be misread (a string of labels split into characters, steps=0 replaced
    by a default), naming the argument."""
    if isinstance(labels, str):
        raise ShopLoRAError(f"labels must be a list of label names, not a string ({labels[:40]!r}); e.g. "
                            "labels=[\"return_item\", \"cancel_order\"]")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ShopLoRAError(f"steps must be a whole number >= 1 (or None for the recipe's budget), got {steps!r}")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf):
        raise ShopLoRAError(f"lr must be a number > 0 (or None for the recipe's), got {lr!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ShopLoRAError(f"seed must be a whole number, got {seed!r}")
    if keep not in KEEP:
        raise ShopLoRAError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")


def update(adapter: Adapter, examples: Any, *, labels: Sequence[str] | None = None, instruction: str | None = None,
           scenario: str | None = None, spec: TaskSpec | None = None, kind: str | None = None,
           own_weights: bool | None = None, steps: int | None = None, lr: float | None = None, seed: int = 0,
           replay: bool = True, columns: dict[str, str] | None = None, progress: Progress | None = None) -> Adapter:
    """Continue training `adapter` on new examples without erasing what it knew.

    Without `instruction`/`spec` the examples extend the current scenario (new labels of a classify task join its
    label set); a bounded sample of earlier examples kept in the adapter is replayed with them, each under its own
    scenario's instruction. With `instruction=` and `scenario="name"` (or a `spec`) they start a new scenario, which
    the adapter then answers by default; `adapter.scenario(name)` answers an earlier one. A new scenario gets its
    own copy of the weights to train (starting from the current ones), so earlier scenarios keep exactly what they
    learned; `own_weights=False` trains the shared weights with replay instead (one LoRA in all, some forgetting).
    """
    started = time.perf_counter()
    _check_arguments(labels=labels, steps=steps, lr=lr, seed=seed)
    _remember_scenario(adapter)
    before = (adapter.spec, adapter.temperature, adapter.peft_name)  # put back if the update is refused
    new_scenario = spec is not None or instruction is not None
    if own_weights and not new_scenario:
        raise ShopLoRAError("own_weights=True is for a new scenario: pass instruction= and scenario= too (examples "
                            "for the current scenario always train its weights)")
    if not new_scenario:
        examples = load_examples(examples, columns=columns)
        spec = adapter.spec
        if spec.kind == "classify":
            added = [label for label in (*(labels or ()), *infer_labels(examples)) if label not in spec.labels]
            spec = replace(spec, labels=(*spec.labels, *dict.fromkeys(added)))
    else:
        examples = load_examples(examples, columns=columns, labels=labels or _spec_labels(spec))
        if spec is None:
            if not scenario:
                raise ShopLoRAError("a new instruction starts a new scenario: name it, e.g. scenario=\"returns-de\" "
                                    "(or leave out instruction= to add examples to the current scenario)")
            spec = task_spec(examples, instruction, labels, kind, name=scenario)
        if spec.name in adapter.scenarios:
            raise ShopLoRAError(f"the adapter already has a scenario {spec.name!r}: pick another name, or leave out "
                                "instruction= to add examples to the current scenario")
        adapter.temperature = 1.0  # the earlier scenario's calibration does not carry over
        if own_weights is not False:
            adapter.peft_name = adapter._new_weights(adapter.state())
            replay = False  # these weights answer only the new scenario
    adapter.spec = spec  # replayed rows of this scenario render with it (scenario(own name) is the adapter itself)
    record = adapter.record
    rng = random.Random(seed)
    earlier = record.get("replay", [])
    sampled = rng.sample(earlier, min(len(earlier), max(len(examples), 8))) if replay else []
    replayed = [(adapter.scenario(row.get("scenario", spec.name)).spec, Example(row["input"], row["output"]))
                for row in sampled]
    recipe = Recipe.from_dict(record["recipe"]) if "recipe" in record else DEFAULT_RECIPE
    trained_in_place = adapter.peft_name == before[2]
    weights = adapter.state() if trained_in_place else None  # a failure midway must not leave them half-trained
    try:
        fitted = _fit(adapter, examples, _budget(recipe, steps, lr), rng, progress, replayed=replayed)
    except BaseException:  # a refused input, an OOM, Ctrl-C: the adapter stays as it was, new weights dropped
        with adapter.base.lock:
            if trained_in_place:
                load_lora_state(adapter.base.peft, weights, adapter.peft_name)
            else:
                remove_lora(adapter.base, adapter.peft_name)
        adapter.spec, adapter.temperature, adapter.peft_name = before
        raise
    record.setdefault("updates", []).append({"scenario": spec.name, "n_examples": len(examples),
                                             "n_replayed": len(replayed), "examples_sha256": examples_digest(examples),
                                             **fitted, "seconds": round(time.perf_counter() - started, 2)})
    record.update(n_examples=record.get("n_examples", 0) + len(examples), metrics=fitted["metrics"],
                  replay=_replay_buffer(earlier, record.get("n_examples", 0), examples, spec.name, rng))
    _remember_scenario(adapter)
    return adapter


def _remember_scenario(adapter: Adapter) -> None:
    """Record the current scenario (spec and calibration) so `adapter.scenario(name)` finds it, saved or not."""
    adapter.record["spec"] = adapter.spec.to_dict()
    adapter.record["temperature"] = adapter.temperature
    adapter.record.setdefault("scenarios", {})[adapter.spec.name] = {"spec": adapter.spec.to_dict(),
                                                                      "temperature": adapter.temperature}
    adapter.weights[adapter.spec.name] = adapter.peft_name


REPLAY_SIZE = 256  # examples kept in an adapter for replay: enough to anchor a few scenarios, small on disk


def _replay_buffer(earlier: Sequence[dict], n_seen: int, new: Sequence[Example], scenario: str,
                   rng: random.Random) -> list[dict]:
    """A uniform sample of at most REPLAY_SIZE of every example seen so far, each with its scenario: reservoir
    sampling (Algorithm R) over the `n_seen` examples behind `earlier` and then `new`, so an example of the first
    scenario is as likely to be kept as one of the last."""
    buffer = list(earlier)
    for seen, example in enumerate(new, start=n_seen):
        row = {**example.to_dict(), "scenario": scenario}
        if len(buffer) < REPLAY_SIZE:
            buffer.append(row)
        elif (slot := rng.randrange(seen + 1)) < REPLAY_SIZE:
            buffer[slot] = row
    return buffer


MIN_FOR_ESTIMATE = 32  # examples: a curve needs three training sizes and a held-out share worth scoring


def _check_estimate(spec: TaskSpec, n: int, target: float) -> None:
    if spec.kind != "classify":
        raise ShopLoRAError(f"examples_needed_for needs a classify task (this one is {spec.kind}): it fits the "
                            "held-out accuracy")
    if n < MIN_FOR_ESTIMATE:
        raise ShopLoRAError(f"examples_needed_for needs at least {MIN_FOR_ESTIMATE} examples to fit a learning curve, "
                            f"got {n}; label more or leave it out")
    if not 0 < target < 1:
        raise ShopLoRAError(f"examples_needed_for is a target accuracy between 0 and 1, got {target}")


def _subset_scores(base: Base, spec: TaskSpec, state: dict[str, Any] | None, settings: LoraSettings,
                   train: Sequence[Example], held_out: Sequence[Example], budget: Budget,
                   seed: int, calibrated: bool) -> list[tuple[int, float]]:
    """Held-out accuracy after the budget adapt gives a quarter and a half of the training split, from the same init
    and scored the same way (`calibrated`): the smaller points of the learning curve."""
    import torch

    points = []
    for size in (len(train) // 4, len(train) // 2):
        torch.manual_seed(seed)
        trial = Adapter(base, spec, state, settings, {"contextual_calibration": calibrated})
        try:
            rendered = [render(spec, e, base.tokenizer) for e in train[:size]]
            with base.lock:
                trial._active()
                loop = budget(size)
                label_ids = [answer_ids(label, base.tokenizer) for label in spec.labels] if loop.loss == "labels" \
                    else None
                train_steps(base.peft, rendered, loop, pad_id=base.tokenizer.pad_token_id, rng=random.Random(seed),
                            name=trial.peft_name, labels=label_ids)
            points.append((size, trial.evaluate(held_out)["accuracy"]))
        finally:
            trial.unload()
    return points


def _examples_needed(points: Sequence[tuple[int, float]], target: float, n_held_out: int) -> dict[str, Any]:
    estimate = examples_needed({0: points}, target, n_scored=n_held_out)
    note = estimate.note("this task") if estimate else "no estimate: the curve has a single size"
    return {**(estimate.to_dict() if estimate else {}), "target": target,
            "points": [list(point) for point in points],
            "note": f"{note} (training examples; one adaptation per size, scored on {n_held_out} held-out "
                    "examples: a rough guide)"}


@dataclass
class Checkpoint:
    """The weights at one checked step and what they score on the held-out examples."""

    step: int
    loss: float  # classify: cross-entropy over the label set; otherwise the answer-token loss
    accuracy: float | None  # classify only
    scores: Any  # classify: the held-out label scores (they calibrate the kept weights without another pass)
    state: dict[str, Any] | None = None  # the LoRA tensors, kept while this is the best candidate

    def beats(self, other: "Checkpoint | None") -> bool:
        """Whether these weights are at least as good as `other`'s, the later step winning ties: held-out accuracy
        for classify tasks (the loss only breaks no ties: on a few examples it rewards timid weights), else loss."""
        if other is None:
            return True
        if self.accuracy is not None and other.accuracy is not None:
            return self.accuracy >= other.accuracy
        return self.loss <= other.loss


def _fit(adapter: Adapter, examples: Sequence[Example], budget: Budget, rng: random.Random,
         progress: Progress | None, watch: Watch | None = None,
         replayed: Sequence[tuple[TaskSpec, Example]] = (), keep: str = "best", refit: bool = False,
         phase: Phase | None = None) -> dict[str, Any]:
    """Train from the adapter's current weights on `examples` of its current scenario plus `replayed` earlier ones,
    holding out a stratified fifth of 16+ new examples to choose the weights kept and calibrate. `refit`: when a
    trained step was kept, train again from the start on every example for that many steps (see Recipe.refit).
    Returns what to record."""
    base, spec = adapter.base, adapter.spec
    held_out, train = held_out_split(examples, rng, classify=spec.kind == "classify")
    pairs = [*((spec, e) for e in train), *replayed]
    loop = budget(len(pairs))
    if loop.loss == "labels" and (spec.kind != "classify" or replayed):  # one label set to score against
        loop = replace(loop, loss="answer")
    rendered = [render(s, e, base.tokenizer) for s, e in pairs]
    held_rendered = [render(spec, e, base.tokenizer) for e in held_out]
    check_context(base.model, rendered + held_rendered,
                  texts=[e.input for _, e in pairs] + [e.input for e in held_out])
    check = _held_out_check(adapter, held_out, held_rendered) if held_out else None
    gold = [spec.labels.index(e.output) for e in held_out] if spec.kind == "classify" else []
    label_ids = [answer_ids(label, base.tokenizer) for label in spec.labels] if loop.loss == "labels" else None
    start = adapter.state() if refit and held_out else None
    run = _train(adapter, rendered, check, loop, rng, progress, watch,
                 choose=len(held_out) >= MIN_HELD_OUT_FOR_SELECTION, keep=keep, gold=gold, label_ids=label_ids,
                 phase=phase)
    refit_steps = 0
    if start is not None and run.kept is not None and run.kept.step > 0:
        refit_steps = run.kept.step
        with base.lock:
            load_lora_state(base.peft, start, adapter.peft_name)
            adapter._active()
            if phase:
                phase("refitting", 0, refit_steps)
            train_steps(base.peft, rendered + held_rendered, replace(loop, steps=refit_steps),
                        pad_id=base.tokenizer.pad_token_id, rng=rng, name=adapter.peft_name, labels=label_ids,
                        on_step=(lambda step, loss: phase("refitting", step + 1, refit_steps)) if phase else None)
    metrics: dict[str, Any] = {}
    found: list[str] = []
    if run.kept is not None:
        if phase:
            phase("scoring after", run.kept.step, len(run.losses))
        metrics["held_out_loss"] = round(run.kept.loss, 4)
        if spec.kind == "classify":
            metrics.update(held_out_accuracy_before=run.start.accuracy, held_out_accuracy_last=run.last.accuracy)
            metrics["held_out_per_label"] = _per_label(spec.labels, gold, run.start.scores, run.kept.scores)
            _calibrate(adapter, held_out, run.kept.scores, metrics)
            found = _fit_warnings(spec.labels, gold, run, keep)
        else:
            metrics.update({f"held_out_{k}": v for k, v in adapter.evaluate(held_out).items() if k != "n"})
    return {"n_train": len(train), "n_held_out": len(held_out), "inner_loop": loop.to_dict(),
            "steps_run": len(run.losses), "steps_kept": run.kept.step if run.kept else len(run.losses),
            "train_loss": [round(x, 4) for x in run.losses], "metrics": metrics, "temperature": adapter.temperature,
            "refit_steps": refit_steps, "warnings": found}


def _per_label(labels: Sequence[str], gold: Sequence[int], before: Any, after: Any) -> dict[str, dict[str, int]]:
    """Per label: held-out examples, right before and after adapting, and how often it was the answer after."""
    table = {label: {"n": 0, "right_before": 0, "right_after": 0, "answered": 0} for label in labels}
    for g, b, a in zip(gold, _argmax(before), _argmax(after)):
        row = table[labels[g]]
        row["n"] += 1
        row["right_before"] += b == g
        row["right_after"] += a == g
        table[labels[a]]["answered"] += 1
    return {label: row for label, row in table.items() if row["n"] or row["answered"]}


def _fit_warnings(labels: Sequence[str], gold: Sequence[int], run: "Run", keep: str) -> list[str]:
    """What a user must hear about an adaptation before trusting it: held-out accuracy fell, or one label takes
    most held-out answers."""
    found = []
    start, last, kept = run.start, run.last, run.kept
    if last.accuracy < start.accuracy:
        where = ("the last step's weights were kept, as asked (keep=\"last\")" if keep == "last" else
                 "the starting weights were kept" if kept.step == 0 else
                 f"the weights of step {kept.step} were kept (accuracy {kept.accuracy:.2f})")
        found.append(f"held-out accuracy fell while adapting, from {start.accuracy:.2f} before to {last.accuracy:.2f} "
                     f"after the last step: {where}; check the examples' labels, or add examples of the labels "
                     "it gets wrong (record[\"metrics\"][\"held_out_per_label\"])")
    answered = _argmax(kept.scores)
    top = max(set(answered), key=answered.count)
    share, right_share = answered.count(top) / len(answered), gold.count(top) / len(gold)
    if len(answered) >= 4 and share >= COLLAPSE_SHARE and share >= 2 * right_share:
        found.append(f"one label takes most held-out answers: {labels[top]!r} for {answered.count(top)} of "
                     f"{len(answered)}, though it is right for {gold.count(top)}; the adapter has learned to answer "
                     "one label, not the task: add examples of the other labels, or check that the instruction and "
                     "labels say what tells them apart")
    return found


def _argmax(scores: Sequence[Sequence[float]]) -> list[int]:
    return [max(range(len(s)), key=s.__getitem__) for s in scores]


Check = Callable[[], tuple[float, Any]]  # () -> (held-out loss, label scores of classify tasks or None)


def _held_out_check(adapter: Adapter, held_out: Sequence[Example], held_rendered: Sequence[Any]) -> Check:
    """What the kept weights are chosen by. Classify: the cross-entropy over the label set from the label scorer,
    whose scores of the kept weights then calibrate the confidences without another pass. Otherwise: the answer
    loss."""
    base, spec = adapter.base, adapter.spec
    if spec.kind != "classify":
        return lambda: (mean_loss(base.peft, held_rendered, pad_id=base.tokenizer.pad_token_id), None)
    inputs = [e.input for e in held_out]
    gold = [spec.labels.index(e.output) for e in held_out]

    def check() -> tuple[float, Any]:
        scores = adapter.label_scores(inputs)
        return sum(_log_sum_exp(s) - s[g] for s, g in zip(scores, gold)) / len(gold), scores

    return check


def _log_sum_exp(scores: Sequence[float]) -> float:
    top = max(scores)
    return top + math.log(sum(math.exp(x - top) for x in scores))


def _hits(scores: Sequence[Sequence[float]], gold: Sequence[int]) -> list[bool]:
    """Whether each input's best-scored label is its gold label (by index)."""
    return [a == g for a, g in zip(_argmax(scores), gold)]


@dataclass
class Run:
    """One training run: its losses and the checked weights that matter (None without held-out examples)."""

    losses: list[float]
    start: Checkpoint | None = None  # step 0: the weights training started from
    last: Checkpoint | None = None  # the last step
    kept: Checkpoint | None = None  # the weights the adapter holds now


class TrainingDiverged(ShopLoRAError):
    """The training loss became NaN or infinite: the learning rate is too high for these examples."""


def _train(adapter: Adapter, rendered, check: Check | None, loop: InnerLoop, rng: random.Random,
           progress: Progress | None, watch: Watch | None, *, choose: bool, keep: str, gold: Sequence[int],
           label_ids: Sequence[Sequence[int]] | None = None, phase: Phase | None = None) -> Run:
    """The inner loop. With a held-out `check`, the starting weights and the last step are candidates, and with
    `choose` (enough held-out examples) also every loop.steps / CHECKS steps, with early stopping when PATIENCE
    checks in a row beat neither the best loss nor the best accuracy. The best candidate's weights are kept
    (`keep="last"`: every step runs and the last step's are kept). A NaN or infinite training loss stops the run
    with TrainingDiverged."""
    from tqdm.auto import tqdm

    base, pad_id = adapter.base, adapter.base.tokenizer.pad_token_id
    bar = None if progress else tqdm(total=loop.steps, desc="adapting", unit="step", leave=False, disable=None)
    every = max(1, loop.steps // CHECKS) if choose else loop.steps
    run = Run([])
    best: dict[str, Any] = {"kept": None, "loss": math.inf, "accuracy": -math.inf, "since": 0}

    def checkpoint(step: int) -> Checkpoint:
        loss, scores = in_eval_mode(check)
        accuracy = None if scores is None else sum(_hits(scores, gold)) / len(gold)
        point = Checkpoint(step, loss, accuracy, scores)
        if keep == "best" and point.beats(best["kept"]):
            point.state = lora_state(base.peft, adapter.peft_name)
            if best["kept"] is not None:
                best["kept"].state = None  # one copy of the weights at a time
            best["kept"] = point
        improved = loss < best["loss"] or (accuracy is not None and accuracy > best["accuracy"])
        best.update(loss=min(best["loss"], loss), accuracy=max(best["accuracy"], accuracy or -math.inf),
                    since=0 if improved else best["since"] + 1)
        return point

    def on_step(step: int, loss: float) -> bool:
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training diverged: the loss is {loss} at step {step + 1} of {loop.steps} (lr "
                                   f"{loop.lr:g}); lower the learning rate (e.g. lr={loop.lr / 10:g}) or leave it "
                                   "to the recipe")
        if progress:
            progress(step + 1, loop.steps, loss)
        elif bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
        if watch is not None:
            in_eval_mode(lambda: watch(adapter, step + 1))
        if check is None or ((step + 1) % every and step + 1 < loop.steps):  # the last step is always checked
            return False
        if phase:
            phase("scoring", step + 1, loop.steps)
        run.last = checkpoint(step + 1)
        return choose and keep == "best" and best["since"] >= PATIENCE

    def in_eval_mode(fn: Callable[[], Any]) -> Any:  # inside train_steps: predict in eval mode, then train again
        training = base.peft.training
        base.peft.eval()
        try:
            return fn()
        finally:
            adapter._active()
            if training:
                base.peft.train()

    with base.lock:
        adapter._active()
        if watch is not None:
            watch(adapter, 0)
        if check is not None:
            if phase:
                phase("scoring before", 0, loop.steps)
            run.start = checkpoint(0)
        try:
            run.losses = train_steps(base.peft, rendered, loop, pad_id=pad_id, rng=rng, name=adapter.peft_name,
                                     on_step=on_step, labels=label_ids)
        finally:
            if bar is not None:
                bar.close()
        if check is not None:
            run.kept = run.last if keep == "last" else best["kept"]
            if run.kept is not run.last:  # training ends on its last check: the best one may be earlier
                load_lora_state(base.peft, run.kept.state, adapter.peft_name)
            run.kept.state = None
    return run


def _calibrate(adapter: Adapter, held_out: Sequence[Example], scores: Sequence[Sequence[float]],
               metrics: dict) -> None:
    """Fit the temperature on the held-out examples' label scores and record accuracy and ECE before/after."""
    labels = adapter.spec.labels
    gold = [labels.index(e.output) for e in held_out]
    correct = _hits(scores, gold)
    raw = [max(softmax(s)) for s in scores]
    adapter.temperature = fit_temperature(scores, gold)
    calibrated = [max(softmax(s, adapter.temperature)) for s in scores]
    metrics.update(held_out_accuracy=sum(correct) / len(correct),
                   held_out_ece_raw=round(expected_calibration_error(raw, correct), 4),
                   held_out_ece=round(expected_calibration_error(calibrated, correct), 4))
