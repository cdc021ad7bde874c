"""Does a meta init adapt better? Adapt one task from several inits on the same examples and score each.

    shoplora compare service-intent-petshop --k 16 --inits default,multitask,none

Methods, all on the same base model, renderer, support set and test examples: `zero_shot` (the instruction only),
`icl` (the k examples as earlier chat turns), and `lora_<init>` for every init (same inner loop: the one recorded
in the init, or the default for a standard init). This is the per-task core of the evaluation benchmark.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Sequence

from adapters import Base, adapt
from adapters.generation import base_only, generate
from adapters.metrics import METRICS, softmax
from adapters.scoring import label_scores
from prompts import Example, TaskSpec
from prompts.suite import Task


@dataclass
class Result:
    method: str
    score: float
    metric: str
    steps: int
    seconds: float


def support_set(task: Task, k: int, seed: int) -> list[Example]:
    """k training examples drawn with `seed` (different seeds: different support sets)."""
    pool = task.examples("train")
    return random.Random(f"support:{seed}:{task.name}").sample(pool, min(k, len(pool)))


def score_base(base: Base, spec: TaskSpec, test: Sequence[Example], shots: Sequence[Example]) -> float:
    """The base model's score without any adapter, zero-shot or with `shots` in the prompt."""
    gold = [e.output for e in test]
    inputs = [e.input for e in test]
    if spec.kind == "classify":
        with base.lock, base_only(base):
            scores = label_scores(base.model, base.tokenizer, spec, inputs, shots=shots)
        predicted = [spec.labels[max(range(len(s)), key=softmax(s).__getitem__)] for s in scores]
    else:
        predicted = generate(base, spec, inputs, shots=shots)
    return METRICS[spec.metric](predicted, gold)


def compare(base: Base, task: Task, *, k: int = 16, inits: Sequence[str] = ("default", "none"), seed: int = 0,
            n_test: int = 50, baselines: bool = True) -> list[Result]:
    """Score each method on `n_test` test examples of `task` after seeing the same `k` examples."""
    support = support_set(task, k, seed)
    test = task.examples("test")[:n_test]
    results = []
    if baselines:
        for method, shots in (("zero_shot", ()), ("icl", support)):
            start = time.perf_counter()
            results.append(Result(method, score_base(base, task.spec, test, shots), task.spec.metric, 0,
                                  time.perf_counter() - start))
    for init in inits:
        start = time.perf_counter()
        adapter = adapt(base, support, spec=task.spec, init=None if init == "none" else init, seed=seed)
        metrics = adapter.evaluate(test)
        name = "standard" if init == "none" else "meta" if init == "default" else init
        results.append(Result(f"lora_{name}", metrics[task.spec.metric],
                              task.spec.metric, adapter.record["steps_run"], time.perf_counter() - start))
        adapter.unload()
    return results


def table(results: Sequence[Result]) -> str:
    lines = ["| method | score | metric | adaptation steps | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {r.method} | {r.score:.3f} | {r.metric} | {r.steps} | {r.seconds:.1f} |" for r in results]
    return "\n".join(lines)
