"""How many examples does a task need? A power-law fit of the error against the number of examples k.

Used by the evaluation benchmark (over seeds and shot counts) and by `adapt` (over subsets of the user's examples).
Plain Python, tested on hand-made numbers.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

BOOTSTRAPS = 500  # seed resamples behind the examples-needed interval
MAX_EXTRAPOLATION = 100  # examples-needed estimates beyond this many times the largest k tried are not given


@dataclass(frozen=True)
class ExamplesNeeded:
    """Roughly how many examples reach `target`, from a power-law fit of the error against k.

    `k` is None when the fit says more examples do not help (or help too slowly to extrapolate); `observed`: a k
    tried already reached the target on average (then `k` is the fewest such). `low`/`high` is the 10-90% range
    over bootstrap resamples (`high` None: some resamples never reach the target).
    """

    target: float
    k: float | None
    low: float | None
    high: float | None
    exponent: float  # b in error = a * k^-b: how fast the error falls as examples are added
    tried: tuple[int, ...]
    observed: bool = False

    def note(self, method: str) -> str:
        where = f"{method} reaches {self.target:.2f}"
        if self.k is None:
            trend = (
                f"the error falls as k^-{self.exponent:.2f}"
                if self.exponent > 0
                else "the error does not fall as k grows"
            )
            return (
                f"{where}: not within {MAX_EXTRAPOLATION}x the largest k tried ({max(self.tried)}) on this "
                f"evidence ({trend})"
            )
        spread = (
            ""
            if self.low is None
            else f" (80% range {whole_examples(self.low)}-{'?' if self.high is None else whole_examples(self.high)})"
        )
        if self.observed:
            fewest = " (the fewest tried)" if self.k == min(self.tried) else ""
            return f"{where} already with {whole_examples(self.k)} examples on average{fewest}{spread}"
        inside = (
            ""
            if min(self.tried) <= self.k <= max(self.tried)
            else f", extrapolated from k = {', '.join(map(str, self.tried))}"
        )
        return f"{where} with about {whole_examples(self.k)} examples{spread}{inside}"

    def to_dict(self) -> dict:
        return {**asdict(self), "tried": list(self.tried)}


def whole_examples(k: float) -> int:
    """An estimated example count as the whole number to label (25.000000001 from rounding is 25)."""
    return max(1, math.ceil(k - 1e-6))


def mean_curve(curves: Iterable[Sequence[tuple[int, float]]]) -> dict[int, float]:
    """The value at each x, averaged over the curves that have it, by x: a score per k over seeds here, a score per
    adaptation step over runs in train/report.py."""
    values: dict[int, list[float]] = {}
    for points in curves:
        for x, value in points:
            values.setdefault(x, []).append(value)
    return {x: sum(v) / len(v) for x, v in sorted(values.items())}


def _power_law(means: Mapping[int, float], floor: float) -> tuple[float, float]:
    """Least-squares fit of log(error) = log(a) - b log(k) over two or more k; (log a, b). The mean score per k is
    fitted, not each seed's: one seed's perfect score would otherwise pull the line by its log alone."""
    xs = [math.log(k) for k in means]
    ys = [math.log(max(1.0 - score, floor)) for score in means.values()]
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys)) / sum((x - x_mean) ** 2 for x in xs)
    return y_mean - slope * x_mean, -slope


def _estimate(means: Mapping[int, float], target: float, floor: float) -> tuple[float | None, float, bool]:
    """(examples, exponent b, observed): the fewest k tried whose mean already reaches `target` (observed), else
    where the fitted power law reaches it (None: the error does not fall, or beyond MAX_EXTRAPOLATION)."""
    log_a, b = _power_law(means, floor)
    reached = [k for k, score in means.items() if score >= target]
    if reached:
        return float(min(reached)), b, True
    if b <= 0:
        return None, b, False
    log_k = (log_a - math.log(1.0 - target)) / b  # in logs: a slow fall of the error means a huge k
    return (math.exp(log_k) if log_k <= math.log(MAX_EXTRAPOLATION * max(means)) else None), b, False


def examples_needed(
    by_seed: Mapping[int, Sequence[tuple[int, float]]], target: float, *, n_scored: int, seed: int = 0
) -> ExamplesNeeded | None:
    """How many examples reach `target` (0 < target < 1), from (k, score) points per seed, each score an accuracy on
    `n_scored` examples; None without two distinct k. The mean error over seeds is fitted as a * k^-b, the usual
    shape of a learning curve. The 80% range resamples the seeds, or with one seed the scores themselves (binomial
    on n_scored examples)."""
    if not 0 < target < 1:
        raise ValueError(f"target must be a score between 0 and 1, got {target}")
    if n_scored < 1:
        raise ValueError(f"n_scored must be at least 1, got {n_scored}")
    runs = [points for points in by_seed.values() if points]
    means = mean_curve(runs)
    if len(means) < 2:
        return None
    floor = 0.5 / n_scored  # all n right says the error is below ~1/n, not 0 (whose log is -inf)
    k, exponent, observed = _estimate(means, target, floor)
    rng, estimates = random.Random(seed), []
    for _ in range(BOOTSTRAPS if k is not None else 0):
        if len(runs) > 1:
            resample = [runs[i] for i in rng.choices(range(len(runs)), k=len(runs))]
        else:
            resample = [[(x, sum(rng.random() < score for _ in range(n_scored)) / n_scored) for x, score in runs[0]]]
        again = mean_curve(resample)
        found = _estimate(again, target, floor)[0] if len(again) > 1 else None
        estimates.append(math.inf if found is None else found)
    estimates.sort()
    low, high = (
        (None, None)
        if not estimates
        else (
            None if math.isinf(x) else x for x in (estimates[len(estimates) // 10], estimates[len(estimates) * 9 // 10])
        )
    )
    return ExamplesNeeded(target, k, low, high, exponent, tuple(means), observed)
