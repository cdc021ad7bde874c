"""What `adapt` and `update` make of a user's input before training: the task spec (kind and labels inferred
from the examples), argument checks, label coverage and whether label scores need contextual calibration."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Sequence

from prompts import Example, ShopLoRAError, TaskSpec, infer_labels

KEEP = ("best", "last")  # which weights adapting keeps: the best held-out step, or the last step


def task_spec(
    examples: Sequence[Example],
    instruction: str | None,
    labels: Sequence[str] | None,
    kind: str | None,
    name: str = "custom",
) -> TaskSpec:
    """The spec of a user's task. Without `kind`: classify when labels are given or the answers repeat as short
    labels, extract when every answer is a JSON object, generate otherwise."""
    if not instruction or not instruction.strip():
        raise ShopLoRAError(
            'the instruction is empty: say what the model should do, e.g. "Classify the customer\'s message."'
        )
    if kind is None:
        outputs = [e.output for e in examples]
        if labels:
            kind = "classify"
        elif all(_is_json_object(o) for o in outputs):
            kind = "extract"
        elif len(set(outputs)) < len(outputs) and all(len(o.split()) <= 4 for o in outputs):
            kind = "classify"
        else:
            kind = "generate"
    if kind == "classify":
        labels = tuple(labels) if labels else infer_labels(examples)
    return TaskSpec(name, "custom", kind, instruction.strip(), labels=tuple(labels or ()) if kind == "classify" else ())


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def spec_labels(spec: TaskSpec | None) -> Sequence[str] | None:
    """A classify spec's labels, so examples outside them are refused up front (they could never be predicted)."""
    return spec.labels if spec is not None and spec.kind == "classify" else None


class LabelCoverageWarning(UserWarning):
    """Some labels of a classify task have no example to adapt on (also in the adapter's record.warnings)."""


def label_coverage_warnings(spec: TaskSpec, examples: Sequence[Example], *, calibrated: bool = True) -> list[str]:
    """Labels of a classify task without a single example: fine-tuning teaches the adapter that only the labels it
    saw exist; contextual calibration (`calibrated`) keeps the others predictable, less reliably. The measurement
    behind both warnings is in docs/python-api.md ("Give every label at least one example")."""
    missing = labels_without_examples(spec, examples)
    if not missing:
        return []
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    if calibrated:
        return [
            f"{len(missing)} of {len(spec.labels)} labels have no example ({shown}): contextual calibration keeps "
            "them predictable, but less reliably than labels with examples; add at least one example of each "
            "label (two from 16 examples up: a fifth is held out)"
        ]
    return [
        f"{len(missing)} of {len(spec.labels)} labels have no example ({shown}): after adapting without contextual "
        "calibration they are rarely predicted, less often than before adapting; add at least one example of "
        "each label (two from 16 examples up: a fifth is held out), or leave contextual calibration on"
    ]


CALIBRATION = ("auto", "always", "never")  # contextual calibration: adapt(), the CLI, the eval config, the lab


def calibration_choice(value: Any) -> str:
    """`contextual_calibration` as one of CALIBRATION. True / False, and None (adapt's default before the choice had
    names), are read as "always" / "never" / "auto"; anything else is refused, naming the choices."""
    older = {True: "always", False: "never", None: "auto"}
    if isinstance(value, bool) or value is None:
        return older[value]
    if isinstance(value, str) and value in CALIBRATION:
        return value
    raise ShopLoRAError(
        f"contextual_calibration must be one of {', '.join(repr(c) for c in CALIBRATION)}, got {value!r}; e.g. "
        'contextual_calibration="always" to divide out the labels\' prior on every classify task'
    )


def needs_calibration(spec: TaskSpec, examples: Sequence[Example], choice: str | bool | None = "auto") -> bool:
    """Whether a classify task learned from `examples` scores its labels with contextual calibration: as `choice`
    says ("always", "never"), or with "auto" exactly when some label has no example. Measured on the held-out
    pet-shop intents (8 examples, 5 support sets, 12 steps; 125 of 200 test messages had an intent without an
    example): accuracy 0.29 -> 0.61 (multi-task init) and 0.31 -> 0.56 (meta init). With every label given, a
    confident adapter's near-zero prior for some label can overturn right answers (a scenario updated with replay:
    1.0 -> 0.5; pet-shop intents, 36 examples, 40 steps from the meta init: test accuracy 0.775 -> 0.625 and 0.825
    -> 0.725), so it stays off."""
    choice = calibration_choice(choice)
    if spec.kind != "classify":
        return False
    return bool(labels_without_examples(spec, examples)) if choice == "auto" else choice == "always"


def labels_without_examples(spec: TaskSpec, examples: Sequence[Example]) -> list[str]:
    """The labels of a classify task (none for other kinds) that no example has as its answer."""
    given = {e.output for e in examples}
    return [label for label in spec.labels if label not in given] if spec.kind == "classify" else []


def examples_digest(examples: Sequence[Example]) -> str:
    """A hash of the examples, recorded so an adapter says exactly what it learned from."""
    blob = json.dumps([e.to_dict() for e in examples], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def check_arguments(*, labels: Any, steps: Any, lr: Any, seed: Any, keep: str = "best") -> None:
    """Refuse arguments that would otherwise be misread (a string of labels split into characters, steps=0 replaced
    by a default), naming the argument."""
    if isinstance(labels, str):
        raise ShopLoRAError(
            f"labels must be a list of label names, not a string ({labels[:40]!r}); e.g. "
            'labels=["return_item", "cancel_order"]'
        )
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ShopLoRAError(f"steps must be a whole number >= 1 (or None for the recipe's budget), got {steps!r}")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf):
        raise ShopLoRAError(f"lr must be a number > 0 (or None for the recipe's), got {lr!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ShopLoRAError(f"seed must be a whole number, got {seed!r}")
    if keep not in KEEP:
        raise ShopLoRAError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
