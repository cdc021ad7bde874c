"""What a practitioner would do without ShopLoRA, as benchmark methods beside ShopLoRA's own.

- `tfidf`: TF-IDF word (1-2) and char_wb (2-5) n-grams and logistic regression on the k examples (classify tasks).
- `lora_plain`: LoRA from PEFT's standard init, trained by a hand-written loop as a user writes it: every example
  trained on (nothing held out), fixed batch 16, lr 5e-4, a fixed 8 epochs (56 steps at k=108), the model's own
  answer-token loss through `labels=`, no early stopping; scored with the same label scorer as every method.
"""

from __future__ import annotations

import math
import random
from typing import Any, Sequence

from adapters import Adapter, Base
from adapters.lora import LoraSettings, lora_parameters
from adapters.record import AdapterRecord, FitReport
from adapters.training import InnerLoop, make_optimizer
from prompts import Example, TaskSpec
from prompts.render import IGNORE, Rendered, render

PLAIN_BATCH = 16
PLAIN_LR = 5e-4
PLAIN_EPOCHS = 8  # enough for ~50 steps at k=108 (7 batches a pass)


def tfidf_classifier(support: Sequence[Example], seed: int = 0):
    """A TF-IDF + logistic regression pipeline fitted on `support` (two labels or more)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    model = make_pipeline(features, LogisticRegression(max_iter=2000, random_state=seed))
    return model.fit([e.input for e in support], [e.output for e in support])


def tfidf_predictions(support: Sequence[Example], inputs: Sequence[str], seed: int = 0) -> list[str]:
    """Labels for `inputs` from a TF-IDF + logistic regression classifier fitted on `support`."""
    labels = sorted({e.output for e in support})
    if len(labels) == 1:  # logistic regression needs two classes; one seen label is all it could answer
        return [labels[0]] * len(inputs)
    return list(tfidf_classifier(support, seed).predict(list(inputs)))


def plain_steps(k: int) -> int:
    return PLAIN_EPOCHS * math.ceil(k / PLAIN_BATCH)


def plain_loss(model, batch: Sequence[Rendered], pad_id: int, device) -> Any:
    """The model's own answer-token loss on `batch`, right-padded, through `labels=`: a hand-written PEFT step."""
    import torch

    width = max(len(r) for r in batch)
    ids = torch.tensor([r.input_ids + [pad_id] * (width - len(r)) for r in batch], device=device)
    labels = torch.tensor([r.labels + [IGNORE] * (width - len(r)) for r in batch], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in batch], device=device)
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss


def plain_lora(base: Base, spec: TaskSpec, support: Sequence[Example], seed: int = 0) -> Adapter:
    """An adapter trained the way a user writes a PEFT loop by hand (see the module docstring)."""
    import torch

    torch.manual_seed(seed)
    adapter = Adapter(base, spec, None, LoraSettings(), AdapterRecord(spec=spec, init="standard"))
    rendered = [render(spec, e, base.tokenizer) for e in support]
    pad = base.tokenizer.pad_token_id
    rng = random.Random(seed)
    with base.lock:
        model = base.peft
        model.set_adapter(adapter.peft_name)
        params = list(lora_parameters(model, adapter.peft_name).values())
        for param in params:
            param.requires_grad_(True)
        optimizer = make_optimizer("adam", params, PLAIN_LR)
        model.train()
        try:
            for _ in range(PLAIN_EPOCHS):
                order = rng.sample(rendered, len(rendered))
                for start in range(0, len(order), PLAIN_BATCH):
                    batch = order[start : start + PLAIN_BATCH]
                    plain_loss(model, batch, pad, base.device).backward()
                    optimizer.step()
                    optimizer.zero_grad()
        finally:
            for param in params:
                param.requires_grad_(False)
            model.eval()
    steps = plain_steps(len(support))
    loop = InnerLoop(steps=steps, lr=PLAIN_LR, batch_size=PLAIN_BATCH)
    adapter.record.fit = FitReport(
        n_train=len(support),
        n_held_out=0,
        inner_loop=loop,
        steps_run=steps,
        steps_kept=steps,
        train_loss=[],
        metrics={},
    )
    return adapter
