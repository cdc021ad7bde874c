"""How the rows of a public dataset become a task's examples: inputs clipped to a token budget, duplicates and
inputs given different answers dropped, labels checked, and a fixed train/test split with caps, the same for every
run and seed. Shared by the `real-v1` suite (prompts/real.py) and the hub tasks (prompts/hub.py).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable

from .errors import DataError
from .spec import Example, TaskSpec
from .synthetic import normalise

TRAIN_CAP = 2000
TEST_CAP = 500
# Datasets without a split of their own give a quarter of their rows (at most TEST_CAP) to the test part.
TEST_SHARE = 4
# Inputs are cut to about 150 words so that most rows (p95) stay under ~256 tokens with the prompt; rows full of part
# numbers or digits tokenise densely and reach ~570 tokens (real-product-qa), so training must still cap length.
INPUT_WORDS = 150
ELLIPSIS = "…"
CHARS_PER_WORD = 6  # English averages about 5 characters and a space a word

RowToExample = Callable[[dict], "Example | None"]  # None: the row does not fit the task (e.g. an open question)


def clip(text: str, words: int) -> str:
    """`text` cut to its first `words` words and CHARS_PER_WORD * `words` characters, with an ellipsis if cut."""
    parts = str(text).split()
    clipped = " ".join(parts[:words])
    if len(clipped) > CHARS_PER_WORD * words:  # long codes and URLs cost many tokens per "word"
        clipped = clipped[: CHARS_PER_WORD * words].rsplit(" ", 1)[0]
    return clipped if len(clipped) == len(" ".join(parts)) else clipped + " " + ELLIPSIS


def _order_key(example: Example) -> bytes:
    # A hash of the input is a shuffle that needs no seed, does not depend on the file's row order, and sends
    # repeated inputs to the same place.
    return hashlib.sha1(normalise(example.input).encode("utf-8")).digest()


def _unique(examples: Iterable[Example]) -> list[Example]:
    """One example per input (as `normalise` sees it); inputs given different answers are dropped as ambiguous."""
    outputs: dict[str, set[str]] = {}
    first: dict[str, Example] = {}
    for example in examples:
        key = normalise(example.input)
        outputs.setdefault(key, set()).add(example.output)
        first.setdefault(key, example)
    return [example for key, example in first.items() if len(outputs[key]) == 1]


def check_labels(spec: TaskSpec, examples: list[Example], where: str) -> None:
    """Raise DataError when a classify task's mapped answers leave its label set (the source's schema changed)."""
    unknown = sorted({e.output for e in examples} - set(spec.labels)) if spec.kind == "classify" else []
    if unknown:
        raise DataError(
            f"{where}: labels {unknown[:5]} are not among {spec.name}'s labels; the dataset's schema "
            "changed, so update its mapping (prompts/real_datasets.py or prompts/hub.py)"
        )


def split_parts(pairs: Iterable[tuple[str | None, Example]]) -> dict[str, tuple[Example, ...]]:
    """Train and test parts from (part or None, example) pairs: the given parts, else a hash-ordered cut.

    Deterministic, deduplicated, no input in both parts, capped at TRAIN_CAP / TEST_CAP.
    """
    pairs = list(pairs)
    if all(part is None for part, _ in pairs):
        ordered = sorted(_unique(example for _, example in pairs), key=_order_key)
        held = min(TEST_CAP, len(ordered) // TEST_SHARE)
        test, train = ordered[:held], ordered[held:]
    else:
        test = _unique(example for part, example in pairs if part == "test")
        train = _unique(example for part, example in pairs if part == "train")
    in_test = {normalise(example.input) for example in test}
    train = [example for example in train if normalise(example.input) not in in_test]
    return {
        "train": tuple(sorted(train, key=_order_key)[:TRAIN_CAP]),
        "test": tuple(sorted(test, key=_order_key)[:TEST_CAP]),
    }
