"""The numbers the evaluation benchmark reports: mean ± std over seeds, a paired significance test and steps to reach
a target score (the examples-needed fit is in adapters/learning_curve.py: adaptation records it too).

Plain Python on lists of scores (no numpy, no scipy), so each piece is tested on hand-made numbers.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

ALPHA = 0.05  # significance level of the notes
EXACT_UP_TO = 12  # paired runs: up to this many, all 2^n sign patterns are enumerated; beyond, a random sample
SIGN_FLIPS = 10_000  # random sign patterns beyond EXACT_UP_TO


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value: its spread is unknown, not 0)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@dataclass(frozen=True)
class Paired:
    """Method a minus method b over n paired runs (same task, support set and test examples)."""

    n: int
    mean_difference: float
    std_difference: float | None  # None for a single pair
    p_value: float  # two-sided, sign-flip permutation test

    @property
    def smallest_p(self) -> float:
        """The smallest p-value n pairs can give at all: 2 / 2^n."""
        return min(1.0, 2 / 2**self.n)

    def note(self, a: str, b: str, alpha: float = ALPHA) -> str:
        """One honest sentence: is a better than b, worse, or is the difference noise?"""
        spread = "" if self.std_difference is None else f" ± {self.std_difference:.3f}"
        head = f"{a} - {b}: {self.mean_difference:+.3f}{spread} over {self.n} paired runs, p = {self.p_value:.3g}"
        if self.smallest_p > alpha:
            return (
                f"{head}: {self.n} pairs cannot show significance at {alpha} (smallest possible p "
                f"{self.smallest_p:.3g}); run more seeds or tasks"
            )
        if self.p_value > alpha:
            return f"{head}: not significant at {alpha}, no evidence of a difference"
        return f"{head}: {a} is significantly {'better' if self.mean_difference > 0 else 'worse'} (at {alpha})"

    def to_dict(self) -> dict:
        return asdict(self)


def paired_test(a: Sequence[float], b: Sequence[float], *, seed: int = 0) -> Paired:
    """Two-sided sign-flip permutation test of mean(a - b) = 0 over paired scores; no normality assumed.

    Under the null, each pair's difference is as likely to have either sign, so p is the share of sign patterns
    whose mean difference is at least as far from 0 as the one observed.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_test needs two equally long, non-empty lists, got {len(a)} and {len(b)}")
    differences = [x - y for x, y in zip(a, b)]
    n = len(differences)
    mean, std = mean_std(differences)
    observed = abs(sum(differences)) - 1e-12  # rounding must not put the observed pattern outside its own tail
    if n <= EXACT_UP_TO:
        patterns = itertools.product((1, -1), repeat=n)
        extreme = sum(abs(sum(s * d for s, d in zip(signs, differences))) >= observed for signs in patterns)
        p = extreme / 2**n
    else:
        rng = random.Random(seed)
        extreme = sum(
            abs(sum(d if rng.random() < 0.5 else -d for d in differences)) >= observed for _ in range(SIGN_FLIPS)
        )
        p = (1 + extreme) / (1 + SIGN_FLIPS)
    return Paired(n, mean, std, min(1.0, p))


def steps_to_target(curve: Mapping[int, float], target: float) -> int | None:
    """The fewest logged adaptation steps at which `curve` (steps -> score) reaches `target`; None if never."""
    reached = [step for step, score in curve.items() if score >= target - 1e-9]
    return min(reached) if reached else None
