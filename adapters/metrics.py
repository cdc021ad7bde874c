"""Scores for predictions: accuracy, macro-F1, exact match, token F1, and calibration (ECE, temperature)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Sequence


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    return sum(p == g for p, g in zip(predicted, gold)) / max(len(gold), 1)


def macro_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """F1 averaged over the gold labels, so rare labels count as much as common ones."""
    scores = []
    for label in sorted(set(gold)):
        tp = sum(p == label and g == label for p, g in zip(predicted, gold))
        fp = sum(p == label and g != label for p, g in zip(predicted, gold))
        fn = sum(p != label and g == label for p, g in zip(predicted, gold))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / max(len(scores), 1)


def _canonical(text: str) -> str:
    """JSON answers compare as data (key order and spacing ignored); other text by normalised words."""
    try:
        return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    except (json.JSONDecodeError, TypeError):
        return " ".join(text.lower().split())


def exact_match(predicted: Sequence[str], gold: Sequence[str]) -> float:
    return sum(_canonical(p) == _canonical(g) for p, g in zip(predicted, gold)) / max(len(gold), 1)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def token_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Mean bag-of-words F1 between each answer and its reference (SQuAD-style)."""
    total = 0.0
    for p, g in zip(predicted, gold):
        p_tokens, g_tokens = _tokens(p), _tokens(g)
        common = sum((Counter(p_tokens) & Counter(g_tokens)).values())
        if not p_tokens or not g_tokens:
            total += float(p_tokens == g_tokens)
        elif common:
            precision, recall = common / len(p_tokens), common / len(g_tokens)
            total += 2 * precision * recall / (precision + recall)
    return total / max(len(gold), 1)


METRICS = {"accuracy": accuracy, "macro_f1": macro_f1, "exact_match": exact_match, "token_f1": token_f1}


def argmax(values: Sequence[float]) -> int:
    """The index of the largest value (the first among ties): the label a row of label scores answers."""
    return max(range(len(values)), key=values.__getitem__)


def softmax(scores: Sequence[float], temperature: float = 1.0) -> list[float]:
    top = max(scores)
    weights = [math.exp((s - top) / temperature) for s in scores]
    total = sum(weights)
    return [w / total for w in weights]


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    total = len(confidences)
    error = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidences) if low < c <= high or (b == 0 and c == 0)]
        if members:
            mean_confidence = sum(confidences[i] for i in members) / len(members)
            mean_correct = sum(correct[i] for i in members) / len(members)
            error += len(members) / total * abs(mean_confidence - mean_correct)
    return error


def fit_temperature(scores: Sequence[Sequence[float]], gold_index: Sequence[int]) -> float:
    """The temperature that minimises the negative log-likelihood of the gold labels (grid search in log space:
    one parameter, a handful of examples, no optimiser needed)."""

    def nll(t: float) -> float:
        return -sum(math.log(max(softmax(s, t)[g], 1e-12)) for s, g in zip(scores, gold_index))

    grid = [math.exp(x / 10) for x in range(-30, 31)]  # 0.05 .. 20
    return min(grid, key=nll)


def backward_transfer(accuracy: Sequence[Sequence[float]]) -> float:
    """BWT over a stream of scenarios: `accuracy[t][i]` is scenario i's accuracy after learning scenario t. The mean
    change, after the last scenario, of every earlier scenario against right after it was learned (negative:
    forgetting)."""
    last = len(accuracy) - 1
    if last < 1:
        return 0.0
    return sum(accuracy[last][i] - accuracy[i][i] for i in range(last)) / last
