"""Training with model selection: the inner loop from an adapter's current weights, held-out checks of the
starting weights and of steps along the way, the kept weights, the refit on every example, the warnings a user
must hear, and the confidence calibration. `adapt` and `update` both fit through here."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from prompts import Example, ShopLoRAError, TaskSpec
from prompts.render import answer_ids, render

from .generation import check_context
from .lora import load_lora_state, lora_state
from .metrics import argmax, expected_calibration_error, fit_temperature, softmax
from .recipe import Recipe, held_out_split
from .record import FitReport
from .training import InnerLoop, mean_loss, train_steps

if TYPE_CHECKING:
    from .adapter import Adapter

Progress = Callable[[int, int, float], None]  # (step, total steps, loss)
# (adapter, steps done): at 0 and after each step, e.g. to score it as it learns
Watch = Callable[["Adapter", int], None]
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
# A label "takes" the held-out answers when it is predicted for at least this share of them and at least twice as
# often as it is the right answer: the adapter has learned one answer, not the task.
COLLAPSE_SHARE = 0.6


class AdaptationWarning(UserWarning):
    """Adapting did not help on the held-out examples: accuracy fell, or one label took most answers (also in the
    adapter's record.warnings)."""


Budget = Callable[[int], InnerLoop]  # training examples -> the inner loop to run


def budget_for(recipe: Recipe, steps: int | None, lr: float | None) -> Budget:
    """The recipe's inner loop for a number of training examples, with the caller's steps (run exactly) and lr."""

    def loop(n_train: int) -> InnerLoop:
        chosen = recipe.loop(n_train)
        return replace(
            chosen, steps=steps if steps is not None else chosen.steps, lr=lr if lr is not None else chosen.lr
        )

    return loop


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


def fit(
    adapter: "Adapter",
    examples: Sequence[Example],
    budget: Budget,
    rng: random.Random,
    progress: Progress | None,
    watch: Watch | None = None,
    replayed: Sequence[tuple[TaskSpec, Example]] = (),
    keep: str = "best",
    refit: bool = False,
    phase: Phase | None = None,
) -> FitReport:
    """Train from the adapter's current weights on `examples` of its current scenario plus `replayed` earlier ones,
    holding out a stratified fifth of 16+ new examples to choose the weights kept and calibrate. `refit`: when a
    trained step was kept, train again from the start on every example for that many steps (see Recipe.refit).
    Returns what the fit did."""
    base, spec = adapter.base, adapter.spec
    held_out, train = held_out_split(examples, rng, classify=spec.kind == "classify")
    pairs = [*((spec, e) for e in train), *replayed]
    loop = budget(len(pairs))
    if loop.loss == "labels" and (spec.kind != "classify" or replayed):  # one label set to score against
        loop = replace(loop, loss="answer")
    rendered = [render(s, e, base.tokenizer) for s, e in pairs]
    held_rendered = [render(spec, e, base.tokenizer) for e in held_out]
    check_context(base.model, rendered + held_rendered, texts=[e.input for _, e in pairs] + [e.input for e in held_out])
    check = held_out_check(adapter, held_out, held_rendered) if held_out else None
    gold = [spec.labels.index(e.output) for e in held_out] if spec.kind == "classify" else []
    label_ids = [answer_ids(label, base.tokenizer) for label in spec.labels] if loop.loss == "labels" else None
    start = adapter.state() if refit and held_out else None
    run = checked_run(
        adapter,
        rendered,
        check,
        loop,
        rng,
        progress,
        watch,
        choose=len(held_out) >= MIN_HELD_OUT_FOR_SELECTION,
        keep=keep,
        gold=gold,
        label_ids=label_ids,
        phase=phase,
    )
    refit_steps = 0
    if start is not None and run.kept is not None and run.kept.step > 0:
        refit_steps = run.kept.step
        with base.lock:
            load_lora_state(base.peft, start, adapter.peft_name)
            adapter.activate()
            if phase:
                phase("refitting", 0, refit_steps)
            train_steps(
                base.peft,
                rendered + held_rendered,
                replace(loop, steps=refit_steps),
                pad_id=base.tokenizer.pad_token_id,
                rng=rng,
                name=adapter.peft_name,
                labels=label_ids,
                on_step=(lambda step, loss: phase("refitting", step + 1, refit_steps)) if phase else None,
            )
    metrics: dict[str, Any] = {}
    found: list[str] = []
    if run.kept is not None:
        if phase:
            phase("scoring after", run.kept.step, len(run.losses))
        metrics["held_out_loss"] = round(run.kept.loss, 4)
        if spec.kind == "classify":
            metrics.update(held_out_accuracy_before=run.start.accuracy, held_out_accuracy_last=run.last.accuracy)
            metrics["held_out_per_label"] = per_label(spec.labels, gold, run.start.scores, run.kept.scores)
            calibrate(adapter, held_out, run.kept.scores, metrics)
            found = fit_warnings(spec.labels, gold, run, keep)
        else:
            metrics.update({f"held_out_{k}": v for k, v in adapter.evaluate(held_out).items() if k != "n"})
    return FitReport(
        n_train=len(train),
        n_held_out=len(held_out),
        inner_loop=loop,
        steps_run=len(run.losses),
        steps_kept=run.kept.step if run.kept else len(run.losses),
        train_loss=[round(x, 4) for x in run.losses],
        metrics=metrics,
        temperature=adapter.temperature,
        refit_steps=refit_steps,
        warnings=found,
    )


def per_label(labels: Sequence[str], gold: Sequence[int], before: Any, after: Any) -> dict[str, dict[str, int]]:
    """Per label: held-out examples, right before and after adapting, and how often it was the answer after."""
    table = {label: {"n": 0, "right_before": 0, "right_after": 0, "answered": 0} for label in labels}
    for g, b, a in zip(gold, map(argmax, before), map(argmax, after)):
        row = table[labels[g]]
        row["n"] += 1
        row["right_before"] += b == g
        row["right_after"] += a == g
        table[labels[a]]["answered"] += 1
    return {label: row for label, row in table.items() if row["n"] or row["answered"]}


def fit_warnings(labels: Sequence[str], gold: Sequence[int], run: "Run", keep: str) -> list[str]:
    """What a user must hear about an adaptation before trusting it: held-out accuracy fell, or one label takes
    most held-out answers."""
    found = []
    start, last, kept = run.start, run.last, run.kept
    if last.accuracy < start.accuracy:
        where = (
            'the last step\'s weights were kept, as asked (keep="last")'
            if keep == "last"
            else "the starting weights were kept"
            if kept.step == 0
            else f"the weights of step {kept.step} were kept (accuracy {kept.accuracy:.2f})"
        )
        found.append(
            f"held-out accuracy fell while adapting, from {start.accuracy:.2f} before to {last.accuracy:.2f} "
            f"after the last step: {where}; check the examples' labels, or add examples of the labels "
            "it gets wrong (adapter.record.metrics['held_out_per_label'])"
        )
    answered = [argmax(s) for s in kept.scores]
    top = max(set(answered), key=answered.count)
    share, right_share = answered.count(top) / len(answered), gold.count(top) / len(gold)
    if len(answered) >= 4 and share >= COLLAPSE_SHARE and share >= 2 * right_share:
        found.append(
            f"one label takes most held-out answers: {labels[top]!r} for {answered.count(top)} of "
            f"{len(answered)}, though it is right for {gold.count(top)}; the adapter has learned to answer "
            "one label, not the task: add examples of the other labels, or check that the instruction and "
            "labels say what tells them apart"
        )
    return found


Check = Callable[[], tuple[float, Any]]  # () -> (held-out loss, label scores of classify tasks or None)


def held_out_check(adapter: "Adapter", held_out: Sequence[Example], held_rendered: Sequence[Any]) -> Check:
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
        return sum(log_sum_exp(s) - s[g] for s, g in zip(scores, gold)) / len(gold), scores

    return check


def log_sum_exp(scores: Sequence[float]) -> float:
    top = max(scores)
    return top + math.log(sum(math.exp(x - top) for x in scores))


def hits(scores: Sequence[Sequence[float]], gold: Sequence[int]) -> list[bool]:
    """Whether each input's best-scored label is its gold label (by index)."""
    return [argmax(s) == g for s, g in zip(scores, gold)]


@dataclass
class Run:
    """One training run: its losses and the checked weights that matter (None without held-out examples)."""

    losses: list[float]
    start: Checkpoint | None = None  # step 0: the weights training started from
    last: Checkpoint | None = None  # the last step
    kept: Checkpoint | None = None  # the weights the adapter holds now


class TrainingDiverged(ShopLoRAError):
    """The training loss became NaN or infinite: the learning rate is too high for these examples."""


def checked_run(
    adapter: "Adapter",
    rendered,
    check: Check | None,
    loop: InnerLoop,
    rng: random.Random,
    progress: Progress | None,
    watch: Watch | None,
    *,
    choose: bool,
    keep: str,
    gold: Sequence[int],
    label_ids: Sequence[Sequence[int]] | None = None,
    phase: Phase | None = None,
) -> Run:
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
        accuracy = None if scores is None else sum(hits(scores, gold)) / len(gold)
        point = Checkpoint(step, loss, accuracy, scores)
        if keep == "best" and point.beats(best["kept"]):
            point.state = lora_state(base.peft, adapter.peft_name)
            if best["kept"] is not None:
                best["kept"].state = None  # one copy of the weights at a time
            best["kept"] = point
        improved = loss < best["loss"] or (accuracy is not None and accuracy > best["accuracy"])
        best.update(
            loss=min(best["loss"], loss),
            accuracy=max(best["accuracy"], accuracy or -math.inf),
            since=0 if improved else best["since"] + 1,
        )
        return point

    def on_step(step: int, loss: float) -> bool:
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged: the loss is {loss} at step {step + 1} of {loop.steps} (lr "
                f"{loop.lr:g}); lower the learning rate (e.g. lr={loop.lr / 10:g}) or leave it "
                "to the recipe"
            )
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
            adapter.activate()
            if training:
                base.peft.train()

    with base.lock:
        adapter.activate()
        if watch is not None:
            watch(adapter, 0)
        if check is not None:
            if phase:
                phase("scoring before", 0, loop.steps)
            run.start = checkpoint(0)
        try:
            run.losses = train_steps(
                base.peft,
                rendered,
                loop,
                pad_id=pad_id,
                rng=rng,
                name=adapter.peft_name,
                on_step=on_step,
                labels=label_ids,
            )
        finally:
            if bar is not None:
                bar.close()
        if check is not None:
            run.kept = run.last if keep == "last" else best["kept"]
            if run.kept is not run.last:  # training ends on its last check: the best one may be earlier
                load_lora_state(base.peft, run.kept.state, adapter.peft_name)
            run.kept.state = None
    return run


def calibrate(
    adapter: "Adapter", held_out: Sequence[Example], scores: Sequence[Sequence[float]], metrics: dict
) -> None:
    """Fit the temperature on the held-out examples' label scores and record accuracy and ECE before/after."""
    labels = adapter.spec.labels
    gold = [labels.index(e.output) for e in held_out]
    correct = hits(scores, gold)
    raw = [max(softmax(s)) for s in scores]
    adapter.temperature = fit_temperature(scores, gold)
    calibrated = [max(softmax(s, adapter.temperature)) for s in scores]
    metrics.update(
        held_out_accuracy=sum(correct) / len(correct),
        held_out_ece_raw=round(expected_calibration_error(raw, correct), 4),
        held_out_ece=round(expected_calibration_error(calibrated, correct), 4),
    )
