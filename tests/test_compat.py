"""No library deprecation on the main paths: a train step, label scoring and generation print nothing."""

from __future__ import annotations

import logging
import random
import warnings

import pytest

from adapters import generate, load_base
from adapters.compat import cache_kwargs, enable_checkpointing
from adapters.lora import LoraSettings, add_lora
from adapters.scoring import label_scores
from adapters.training import InnerLoop, train_steps
from prompts import suite
from prompts.render import answer_ids, render


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def library_notices():
    """Python warnings of every kind plus transformers' logged warnings (its own channel for deprecations)."""
    from transformers.utils import logging as hf_logging

    hf_logging.warning_once.cache_clear()  # a notice printed by an earlier test would otherwise be skipped here
    handler = _Records()
    logger = hf_logging.get_logger("transformers")
    logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught, handler.messages
    logger.removeHandler(handler)


def test_train_score_and_generate_emit_no_deprecation(tiny_model_dir, library_notices):
    caught, logged = library_notices
    base = load_base(str(tiny_model_dir), device="cpu")
    model = add_lora(base, "task", LoraSettings(r=4, alpha=8))
    task = suite.get_task("search-relevance")
    tok = base.tokenizer
    rendered = [render(task.spec, e, tok) for e in task.examples("train")[:6]]
    labels = [answer_ids(label, tok) for label in task.spec.labels]
    for loop in (
        InnerLoop(steps=1, batch_size=6),
        InnerLoop(steps=1, batch_size=6, share_prefix=True),
        InnerLoop(steps=1, batch_size=6, loss="labels"),
    ):
        train_steps(model, rendered, loop, pad_id=tok.pad_token_id, rng=random.Random(0), name="task", labels=labels)
    label_scores(model, tok, task.spec, ["red running shoes"])
    generate(base, suite.get_task("search-query-rewrite").spec, ["red shoes"], max_new_tokens=3)
    enable_checkpointing(base.model)

    deprecations = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if issubclass(w.category, (FutureWarning, DeprecationWarning))
    ]
    assert deprecations == []
    assert [m for m in logged if "deprecat" in m.lower()] == []


def test_the_cache_goes_under_the_name_the_model_reads(tiny_base):
    import inspect

    parameters = inspect.signature(type(tiny_base.model).forward).parameters
    expected = "cache" if "cache" in parameters else "past_key_values"
    assert cache_kwargs(tiny_base.model, "kv") == {expected: "kv"}
    assert cache_kwargs(tiny_base.model, None) == {}  # even past_key_values=None warns in transformers 5
