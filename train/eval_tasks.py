"""The tasks a grid scores and the examples each method learns from: support sets drawn per seed, a user's file held
out into support pool and test set, and a hash of each task's examples (a resumed grid must score the same ones)."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import replace
from pathlib import Path

from adapters.specs import examples_digest, task_spec
from prompts import Example, load_examples, suite
from prompts.suite import Task

from .config import ConfigError
from .eval_config import EvalConfig, UserTask

MIN_USER_TEST = 10  # test examples a user's task must keep beside its largest support set


def support_set(task: Task, k: int, seed: int, *, cover_labels: bool = False) -> list[Example]:
    """k training examples drawn with `seed` (different seeds: different support sets). `cover_labels` (classify):
    one example of each label first, so that adapting does not learn to never predict a label it saw no example
    of; the labels kept when k is smaller than their number are random too."""
    pool = task.examples("train")
    rng = random.Random(f"support:{seed}:{task.name}")
    if not cover_labels or task.spec.kind != "classify":
        return rng.sample(pool, min(k, len(pool)))
    shuffled = rng.sample(pool, len(pool))
    first: dict[str, Example] = {}
    for example in shuffled:
        first.setdefault(example.output, example)
    leading = list(first.values())
    return (leading + [e for e in shuffled if first[e.output] is not e])[:k]


def user_task(entry: UserTask, *, n_test: int, largest_k: int) -> Task:
    """A user's file as a task: `n_test` examples (fewer for a small file) held out to test, the rest to draw
    support sets from."""
    examples = load_examples(entry.path, labels=entry.labels or None)
    name = entry.name or re.sub(r"[^a-z0-9._-]+", "-", Path(entry.path).stem.lower()).strip("-._") or "user-task"
    spec = replace(task_spec(examples, entry.instruction, entry.labels or None, entry.kind), name=name)
    shuffled = random.Random(f"user-task:{name}").sample(examples, len(examples))
    n_held, least = min(n_test, len(examples) - largest_k), min(n_test, MIN_USER_TEST)
    if n_held < least:
        raise ConfigError(
            f"{entry.path} has {len(examples)} examples: support sets of up to {largest_k} plus at "
            f"least {least} test examples need {largest_k + least}; label more examples or lower shots"
        )
    test, pool = shuffled[:n_held], shuffled[n_held:]
    return Task(spec, "user", "user", lambda part, seed: list(pool if part == "train" else test))


def grid_tasks(config: EvalConfig) -> tuple[list[Task], list[str]]:
    """The tasks to evaluate, and notes on what was left out (a suite whose data is not here)."""
    if config.tasks:
        largest = max(config.shots)
        return [
            user_task(t, n_test=config.n_test, largest_k=largest) if isinstance(t, UserTask) else suite.get_task(t)
            for t in config.tasks
        ], []
    here = suite.available_suites()
    notes = [
        f"suite {name} skipped: its data folder is not here (set SHOPLORA_DATA_DIR)"
        for name in config.suites
        if name not in here
    ]
    return [t for name in config.suites if name in here for t in suite.tasks(name, split="held-out")], notes


def task_digest(task: Task) -> str:
    """A hash of a task's spec and examples: a resumed grid must score the same examples."""
    train, test = task.examples("train"), task.examples("test")
    return hashlib.sha256(f"{task.spec.to_dict()}{examples_digest(train)}{examples_digest(test)}".encode()).hexdigest()
