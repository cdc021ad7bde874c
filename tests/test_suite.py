"""The built-in suite: deterministic, sized, split as DESIGN.md says, and not solvable by one keyword."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from prompts import TaskSpec, suite
from prompts.synthetic import GeneratedTask, make_examples, normalise
from prompts.tasks import GENERATED_TASKS

TASKS = suite.tasks("ecommerce-v1")
CLASSIFY = [t for t in TASKS if t.spec.kind == "classify"]


def tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def best_single_token_rule(train, test) -> tuple[float, str]:
    """Test accuracy of the best rule 'token t in the input -> label a, else label b', fitted on train.

    The empty rule (always the majority label) is included, so a lopsided label distribution fails too.
    """
    majority = Counter(e.output for e in train).most_common(1)[0][0]
    best = (sum(e.output == majority for e in test) / len(test), "<majority>")
    train_tokens = [(tokens(e.input), e.output) for e in train]
    test_tokens = [(tokens(e.input), e.output) for e in test]
    vocabulary = set().union(*(toks for toks, _ in train_tokens))
    for token in vocabulary:
        with_token = Counter(label for toks, label in train_tokens if token in toks)
        without = Counter(label for toks, label in train_tokens if token not in toks)
        yes = with_token.most_common(1)[0][0]
        no = without.most_common(1)[0][0] if without else yes
        accuracy = sum((yes if token in toks else no) == label for toks, label in test_tokens) / len(test_tokens)
        if accuracy > best[0]:
            best = (accuracy, token)
    return best


def test_suite_size_families_kinds():
    assert len(TASKS) >= 24
    assert {t.spec.family for t in TASKS} == {"search", "service", "reviews", "product", "behaviour", "risk"}
    assert {t.spec.kind for t in TASKS} == {"classify", "generate", "extract"}
    assert len({t.name for t in TASKS}) == len(TASKS)


def test_held_out_scenarios_are_new():
    held_out = [t for t in TASKS if t.split == "held-out"]
    meta_train = [t for t in TASKS if t.split == "meta-train"]
    assert len(held_out) >= 6
    train_label_sets = {t.spec.labels for t in meta_train if t.spec.labels}
    # Every held-out classify scenario brings a label set meta-training never saw.
    assert all(t.spec.labels not in train_label_sets for t in held_out if t.spec.kind == "classify")
    # At least one held-out task type (the name minus any shop/domain suffix) is absent from meta-training.
    meta_types = {t.name for t in meta_train}
    assert any(not any(h.name.startswith(m) or m.startswith(h.name) for m in meta_types) for h in held_out)
    assert {"risk", "behaviour"} & {t.spec.family for t in held_out}


def test_service_intent_has_at_least_20_intents():
    assert len(suite.get_task("service-intent").spec.labels) >= 20


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_sizes_labels_and_no_overlap(task):
    train, test = task.examples("train"), task.examples("test")
    assert len(train) >= 300 and len(test) >= 100
    assert not {normalise(e.input) for e in train} & {normalise(e.input) for e in test}
    assert all(e.input.strip() and e.output.strip() for e in train + test)
    if task.spec.kind == "classify":
        assert {e.output for e in train + test} == set(task.spec.labels)
    if task.spec.kind == "extract":
        for e in train[:50]:
            json.loads(e.output)  # extract answers are JSON the evaluator can parse


@pytest.mark.parametrize("task", CLASSIFY, ids=lambda t: t.name)
def test_no_single_token_shortcut(task):
    accuracy, token = best_single_token_rule(task.examples("train"), task.examples("test"))
    assert accuracy <= 0.70, f"the rule on token {token!r} reaches {accuracy:.0%}"


def test_generation_is_deterministic_and_seeded():
    task = GENERATED_TASKS[0]
    again = GeneratedTask(task.spec, task.split, task.make)  # a new object: not served from the cache
    assert make_examples(task, seed=0) == make_examples(again, seed=0)
    assert make_examples(task, seed=0) != make_examples(task, seed=1)


def test_generation_deterministic_across_processes():
    # str hashes differ per PYTHONHASHSEED: any set-order or hash() dependence in a generator shows up here.
    import subprocess
    import sys

    code = (
        "import json; from prompts import suite; "
        "print(json.dumps([e.to_dict() for t in suite.tasks() for e in t.examples('test')]))"
    )
    dumps = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(dumps) == 1


def test_spec_validation():
    with pytest.raises(Exception, match="family"):
        TaskSpec("x", "cooking", "classify", "Do it.", labels=("a", "b"))
    with pytest.raises(Exception, match="at least 2 labels"):
        TaskSpec("x", "search", "classify", "Do it.", labels=("a",))
    with pytest.raises(Exception, match="not allowed"):
        TaskSpec("../evil", "search", "generate", "Do it.")
