"""How `adapt` trains when the caller gives no step count: a budget that follows the examples, a stratified held-out
part, and the rule that picks which weights to keep.

The budget is epochs over the training examples, not an init's meta-training inner loop: a meta init records the
few steps it was meta-learned with, and reusing them on 100 examples underfits (the shipped inits' 4 steps of 4
see 16 of them). docs/adaptation.md says what was swept to choose these numbers and what each choice measured.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Sequence

from prompts import Example, ShopLoRAError

from .training import InnerLoop, known_settings

MIN_HELD_OUT_POOL = 16  # with at least this many examples, some are held out to choose the weights and calibrate
HELD_OUT_SHARE = 0.2


@dataclass(frozen=True)
class Recipe:
    """The default adaptation budget: `epochs` passes over the training split in batches of `batch_size`, at least
    `min_steps` and at most `max_steps` optimizer steps, at learning rate `lr`."""

    epochs: int = 8  # passes over the training examples
    batch_size: int = 16  # examples per step (fewer when there are fewer)
    lr: float = 5e-4
    min_steps: int = 24  # a handful of examples still gets enough steps to move the weights
    max_steps: int = 96  # bounds the time: about 4 min on 2 CPU cores for the embedded model at batch 16
    optimizer: str = "adam"
    loss: str = "answer"  # or "labels" (classify): see InnerLoop.loss
    share_prefix: bool = True  # the shared system turn runs once a step (same gradients): see InnerLoop
    # Once the held-out examples have chosen how many steps to keep, train again from the start on all examples
    # (held-out ones too) for that many steps: at 2 examples a label, the stratified held-out part is half the data
    # (what refit gained is measured in docs/adaptation.md). Only when a trained step won: the starting weights are
    # never replaced by an unchecked run. The calibration and the held-out metrics stay those of the choosing run.
    refit: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.min_steps < 1 or self.max_steps < self.min_steps:
            raise ShopLoRAError("recipe epochs, batch_size and min_steps must be >= 1, max_steps >= min_steps")
        if not self.lr > 0:
            raise ShopLoRAError(f"recipe lr must be > 0, got {self.lr}")

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        return cls(**known_settings(cls, data, "recipe"))

    def to_dict(self) -> dict:
        return asdict(self)

    def loop(self, n_train: int, *, max_length: int = InnerLoop.max_length) -> InnerLoop:
        """The inner loop for `n_train` training examples."""
        batch = max(1, min(self.batch_size, n_train))
        steps = self.epochs * math.ceil(n_train / batch)
        return InnerLoop(
            steps=min(self.max_steps, max(self.min_steps, steps)),
            lr=self.lr,
            optimizer=self.optimizer,
            batch_size=batch,
            max_length=max_length,
            min_epochs=0,
            loss=self.loss,
            share_prefix=self.share_prefix,
        )


DEFAULT_RECIPE = Recipe()


def held_out_split(
    examples: Sequence[Example], rng: random.Random, *, classify: bool
) -> tuple[list[Example], list[Example]]:
    """(held out, train) from 16 or more examples: a fifth held out, in a shuffled order. Classify tasks are
    stratified: every label with two or more examples has one held out (more than a fifth when labels are many),
    and no label loses its last training example; the rest of the fifth is filled from the labels with most left."""
    shuffled = list(examples)
    rng.shuffle(shuffled)
    if len(shuffled) < MIN_HELD_OUT_POOL:
        return [], shuffled
    n_held = int(len(shuffled) * HELD_OUT_SHARE)
    if not classify:
        return shuffled[:n_held], shuffled[n_held:]
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(shuffled):
        by_label[example.output].append(index)
    held = [indices[0] for indices in by_label.values() if len(indices) >= 2]
    left = {label: indices[1:] if len(indices) >= 2 else indices for label, indices in by_label.items()}
    while len(held) < n_held:
        label = max(left, key=lambda name: (len(left[name]), -left[name][0]))
        if len(left[label]) < 2:
            break  # every label is down to its last example
        held.append(left[label].pop(0))
    chosen = set(held)
    return [shuffled[i] for i in sorted(chosen)], [e for i, e in enumerate(shuffled) if i not in chosen]
