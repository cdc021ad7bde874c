"""How many examples does a task need? A power-law fit of the error against the number of examples k.

Used by the evaluation benchmark (over seeds and shot counts) and by `adapt` (over subsets of the user's examples).
Plain Python, tested on hand-made numbers.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

BOOTSTRAPS = 500  # seed resamples behind the examples-needed interval
MAX_EXTRAPOLATION = 100  # examples-needed estimates beyond this many times the largest k tried are not given


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
