"""How a generated task turns a seed into its train and test examples (deterministic, label-balanced, no overlap)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from .errors import ShopLoRAError
from .spec import Example, TaskSpec
from .world import World, build_world

# make(rng, world, label) -> Example. For classify tasks `label` is the answer to produce an input for (the suite
# balances labels); for generate/extract tasks it is None.
MakeExample = Callable[[random.Random, World, "str | None"], Example]

N_TRAIN = 300
N_TEST = 100
SPLITS = ("meta-train", "held-out")


def normalise(text: str) -> str:
    """The form used to decide that two inputs are the same example (case and spacing ignored)."""
    return re.sub(r"\s+", " ", text.lower()).strip()


@dataclass(frozen=True)
class GeneratedTask:
    """A task of a generated suite: its spec, its split, and the function that makes one example."""

    spec: TaskSpec
    split: str
    make: MakeExample

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ShopLoRAError(f"task {self.spec.name}: split {self.split!r} is not one of {SPLITS}")


def make_examples(task: GeneratedTask, seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST) -> tuple[list[Example], list[Example]]:
    """Train and test examples of `task` for `seed`: same seed, same examples; no input in both."""
    train, test = _make_examples(task, seed, n_train, n_test)
    return list(train), list(test)


@lru_cache(maxsize=256)
def _make_examples(task: GeneratedTask, seed: int, n_train: int, n_test: int) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    # A string seed goes through sha512 in `random`, so it does not depend on PYTHONHASHSEED.
    rng = random.Random(f"{seed}:{task.spec.name}")
    world = build_world(seed)
    total = n_train + n_test
    labels = task.spec.labels
    seen: set[str] = set()
    examples: list[Example] = []
    attempts = 0
    while len(examples) < total:
        attempts += 1
        if attempts > 50 * total:
            raise ShopLoRAError(
                f"task {task.spec.name}: the generator made only {len(examples)} distinct inputs in {attempts} tries; "
                "it needs more variety"
            )
        label = labels[len(examples) % len(labels)] if labels else None
        example = task.make(rng, world, label)
        if label is not None and example.output != label:
            raise ShopLoRAError(f"task {task.spec.name}: asked for label {label!r}, the generator gave {example.output!r}")
        key = normalise(example.input)
        if key in seen:
            continue
        seen.add(key)
        examples.append(example)
    rng.shuffle(examples)
    return tuple(examples[:n_train]), tuple(examples[n_train:])
