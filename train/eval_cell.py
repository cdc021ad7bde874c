"""One cell of the grid: every method scored on one task after learning from the same k examples (one seed's support
set), each yielded as a `Result` as soon as it is scored. `shoplora compare` prints one cell as a table."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from adapters import Adapter, Base, adapt
from adapters.generation import base_only, generate
from adapters.metrics import METRICS, argmax
from adapters.scoring import label_scores
from adapters.specs import LabelCoverageWarning, needs_calibration
from prompts import Example, TaskSpec
from prompts.suite import Task

from .baselines import plain_lora, tfidf_predictions
from .eval_config import BASELINES, META_INIT
from .eval_tasks import support_set


@dataclass
class Result:
    """One method's score on one task after learning from k examples (support set `seed`)."""

    method: str
    score: float  # on the task's metric
    metric: str
    steps: int  # adaptation steps run (0 for zero_shot and icl)
    seconds: float  # wall time of the adaptation (0 for zero_shot and icl: their cost is in score_seconds)
    task: str = ""
    k: int = 0
    seed: int = 0
    score_seconds: float = 0.0  # wall time of scoring the test examples
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (adaptation steps, score); the last: as returned

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        return cls(**{**data, "curve": [tuple(point) for point in data.get("curve", [])]})


def score_base(
    base: Base, spec: TaskSpec, test: Sequence[Example], shots: Sequence[Example], *, calibrate: bool = False
) -> float:
    """The base model's score without any adapter, zero-shot or with `shots` in the prompt (`calibrate`: classify
    labels scored with contextual calibration)."""
    gold = [e.output for e in test]
    inputs = [e.input for e in test]
    if spec.kind == "classify":
        with base.lock, base_only(base):
            scores = label_scores(base.model, base.tokenizer, spec, inputs, shots=shots, calibrate=calibrate)
        predicted = [spec.labels[argmax(s)] for s in scores]
    else:
        predicted = generate(base, spec, inputs, shots=shots)
    return METRICS[spec.metric](predicted, gold)


def score_methods(
    base: Base,
    task: Task,
    *,
    k: int = 16,
    seed: int = 0,
    n_test: int = 50,
    methods: Sequence[str] = ("zero_shot", "icl", "lora_meta", "lora_standard"),
    inits: Mapping[str, str | Path | None] | None = None,
    steps: int | None = None,
    curve_steps: Sequence[int] = (),
    keep: Callable[[str, Adapter], None] | None = None,
    cover_labels: bool = False,
    calibrate: str = "auto",
) -> Iterator[Result]:
    """Score each method on `n_test` test examples of `task` after seeing the same `k` examples (`cover_labels`:
    see support_set; `calibrate`: contextual calibration of classify labels, auto / always / never); yields each
    Result as soon as it is scored. LoRA methods start from `inits[method]` (None: the standard init; by default
    lora_meta is the shipped meta init, META_INIT) and run `steps` steps (None: the recipe's budget), logging the
    score at `curve_steps` on the way; `keep` sees each adapter before it is unloaded (e.g. to save it)."""
    inits = {"lora_meta": META_INIT, "lora_standard": None} if inits is None else inits
    support = support_set(task, k, seed, cover_labels=cover_labels)
    test = task.examples("test")[:n_test]
    metric = task.spec.metric
    for method in methods:
        cell = {"task": task.name, "k": k, "seed": seed}
        if method == "tfidf":
            if task.spec.kind != "classify":
                continue  # a text classifier: no score on extract and generate tasks
            start = time.perf_counter()
            predicted = tfidf_predictions(support, [e.input for e in test], seed)
            score = METRICS[metric](predicted, [e.output for e in test])
            yield Result(method, score, metric, 0, time.perf_counter() - start, metrics={metric: score}, **cell)
            continue
        if method == "lora_plain":
            start = time.perf_counter()
            adapter = plain_lora(base, task.spec, support, seed)
            seconds = time.perf_counter() - start
            yield _scored(method, adapter, test, metric, seconds, cell)
            continue
        if method in BASELINES:
            start = time.perf_counter()
            shots = support if method == "icl" else ()
            score = score_base(base, task.spec, test, shots, calibrate=needs_calibration(task.spec, shots, calibrate))
            yield Result(
                method,
                score,
                metric,
                0,
                0.0,
                score_seconds=time.perf_counter() - start,
                metrics={metric: score},
                **cell,
            )
            continue
        curve: list[tuple[int, float]] = []
        watched = [0.0]  # seconds spent scoring along the way, not part of the adaptation's wall time
        planned = [math.inf]  # the run's steps (adapt may add some for a pass over k): progress reports them

        def note_planned(step: int, total: int, loss: float) -> None:  # called before watch at each step
            planned[0] = total

        def watch(adapter: Adapter, steps_done: int) -> None:  # the last step is scored once, after adapting
            if steps_done in curve_steps and steps_done < planned[0]:
                tick = time.perf_counter()
                curve.append((steps_done, adapter.evaluate(test)[metric]))
                watched[0] += time.perf_counter() - tick

        start = time.perf_counter()
        with warnings.catch_warnings():  # random support sets lack labels by design (cover_labels is the switch)
            warnings.simplefilter("ignore", LabelCoverageWarning)
            adapter = adapt(
                base,
                support,
                spec=task.spec,
                init=inits[method],
                seed=seed,
                steps=steps,
                progress=note_planned,
                watch=watch if curve_steps else None,
                contextual_calibration=calibrate,
            )
        seconds = time.perf_counter() - start - watched[0]
        yield _scored(method, adapter, test, metric, seconds, cell, curve=curve if curve_steps else None, keep=keep)


def _scored(
    method: str,
    adapter: Adapter,
    test: Sequence[Example],
    metric: str,
    seconds: float,
    cell: dict,
    *,
    curve: list[tuple[int, float]] | None = None,
    keep: Callable[[str, Adapter], None] | None = None,
) -> Result:
    """Score an adapter that is done learning on the test examples, then free it (`curve`: the scores logged on the
    way, closed with this one; `keep` sees the adapter before it is freed)."""
    start = time.perf_counter()
    scores = adapter.evaluate(test)
    score_seconds = time.perf_counter() - start
    steps = adapter.record.fit.steps_run
    if curve is not None:  # the score after the last step closes the curve
        kept = adapter.record.fit.steps_kept  # early stopping may keep an earlier step's weights
        if all(step != kept for step, _ in curve):
            curve.append((kept, scores[metric]))
    if keep is not None:
        keep(method, adapter)
    adapter.unload()
    return Result(
        method,
        scores[metric],
        metric,
        steps,
        seconds,
        score_seconds=score_seconds,
        metrics={key: value for key, value in scores.items() if key != "n"},
        curve=curve if curve is not None else [],
        **cell,
    )


def table(results: Sequence[Result]) -> str:
    lines = [
        "| method | score | metric | adaptation steps | adaptation seconds | scoring seconds |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.method} | {r.score:.3f} | {r.metric} | {r.steps} | {r.seconds:.1f} | {r.score_seconds:.1f} |"
        for r in results
    ]
    return "\n".join(lines)
