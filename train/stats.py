"""The numbers the evaluation benchmark reports: mean ± std over seeds, a paired significance test, steps to reach a
target score, and a learning-curve fit that says roughly how many examples a task needs.

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
BOOTSTRAPS = 500  # seed resamples behind the examples-needed interval
MAX_EXTRAPOLATION = 100  # examples-needed estimates beyond this many times the largest k tried are not given


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@dataclass(frozen=True)
class Paired:
    """Method a minus method b over n paired runs (same task, support set and test examples)."""

    n: int
    mean_difference: float
    std_difference: float
    p_value: float  # two-sided, sign-flip permutation test

    @property
    def smallest_p(self) -> float:
        """The smallest p-value n pairs can give at all: 2 / 2^n."""
        return min(1.0, 2 / 2**self.n)

    def note(self, a: str, b: str, alpha: float = ALPHA) -> str:
        """One honest sentence: is a better than b, worse, or is the difference noise?"""
        head = (f"{a} - {b}: {self.mean_difference:+.3f} ± {self.std_difference:.3f} over {self.n} paired runs, "
                f"p = {self.p_value:.3g}")
        if self.smallest_p > alpha:
            return f"{head}: {self.n} pairs cannot show significance at {alpha} (smallest possible p " \
                   f"{self.smallest_p:.3g}); run more seeds or tasks"
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
        extreme = sum(abs(sum(d if rng.random() < 0.5 else -d for d in differences)) >= observed
                      for _ in range(SIGN_FLIPS))
        p = (1 + extreme) / (1 + SIGN_FLIPS)
    return Paired(n, mean, std, min(1.0, p))


def steps_to_target(curve: Mapping[int, float], target: float) -> int | None:
    """The fewest logged adaptation steps at which `curve` (steps -> score) reaches `target`; None if never."""
    reached = [step for step, score in curve.items() if score >= target - 1e-9]
    return min(reached) if reached else None


@dataclass(frozen=True)
class ExamplesNeeded:
    """Roughly how many examples reach `target`, from a power-law fit of the error against k.

    `k` is None when the fit says more examples do not help (or help too slowly to extrapolate); `low`/`high` is
    the 10-90% range over bootstrap resamples of the seeds (`high` None: some resamples never reach the target).
    """

    target: float
    k: float | None
    low: float | None
    high: float | None
    exponent: float  # b in error = a * k^-b: how fast the error falls as examples are added
    tried: tuple[int, ...]

    def note(self, method: str) -> str:
        where = f"{method} reaches {self.target:.2f}"
        if self.k is None:
            trend = f"the error falls as k^-{self.exponent:.2f}" if self.exponent > 0 else \
                "the error does not fall as k grows"
            return f"{where}: not within {MAX_EXTRAPOLATION}x the largest k tried ({max(self.tried)}) on this " \
                   f"evidence ({trend})"
        spread = "" if self.low is None else \
            f" (80% range {whole_examples(self.low)}-{'?' if self.high is None else whole_examples(self.high)})"
        inside = "" if min(self.tried) <= self.k <= max(self.tried) else \
            f", extrapolated from k = {', '.join(map(str, self.tried))}"
        return f"{where} with about {whole_examples(self.k)} examples{spread}{inside}"

    def to_dict(self) -> dict:
        return {**asdict(self), "tried": list(self.tried)}


def whole_examples(k: float) -> int:
    """An estimated example count as the whole number to label (25.000000001 from rounding is 25)."""
    return max(1, math.ceil(k - 1e-6))


def _power_law(points: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """Least-squares fit of log(error) = log(a) - b log(k); (log a, b), or None without two distinct k."""
    floor = 1e-3  # a perfect score has error 0, whose log is -inf
    xs = [math.log(k) for k, _ in points]
    ys = [math.log(max(1.0 - score, floor)) for _, score in points]
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - x_mean) ** 2 for x in xs)
    if spread == 0:
        return None
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys)) / spread
    return y_mean - slope * x_mean, -slope


def _k_for(fit: tuple[float, float], target: float, largest: int) -> float | None:
    log_a, b = fit
    if b <= 0:
        return None
    log_k = (log_a - math.log(1.0 - target)) / b  # in logs: a slow fall of the error means a huge k
    return math.exp(log_k) if log_k <= math.log(MAX_EXTRAPOLATION * largest) else None


def examples_needed(by_seed: Mapping[int, Sequence[tuple[int, float]]], target: float, *,
                    seed: int = 0) -> ExamplesNeeded | None:
    """How many examples reach `target` (0 < target < 1), from (k, score) points per seed; None without two
    distinct k. The error is fitted as a * k^-b, the usual shape of a learning curve."""
    if not 0 < target < 1:
        raise ValueError(f"target must be a score between 0 and 1, got {target}")
    points = [point for seed_points in by_seed.values() for point in seed_points]
    fit = _power_law(points) if points else None
    if fit is None:
        return None
    tried = tuple(sorted({k for k, _ in points}))
    k = _k_for(fit, target, tried[-1])
    low = high = None
    if len(by_seed) > 1 and k is not None:
        rng, seeds = random.Random(seed), list(by_seed)
        estimates = []
        for _ in range(BOOTSTRAPS):
            resample = [point for s in rng.choices(seeds, k=len(seeds)) for point in by_seed[s]]
            refit = _power_law(resample)
            found = _k_for(refit, target, tried[-1]) if refit else None
            estimates.append(math.inf if found is None else found)
        estimates.sort()
        low, high = (None if math.isinf(x) else x for x in (estimates[len(estimates) // 10],
                                                           estimates[len(estimates) * 9 // 10]))
    return ExamplesNeeded(target, k, low, high, fit[1], tried)
