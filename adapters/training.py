"""Answer-only LoRA training steps: the inner loop shared by few-shot adaptation and meta-training.

Loss is on answer tokens only, so the LM head runs only on the last positions of each sequence: batches are left
padded, every answer ends at the last column, and `logits_to_keep` skips the vocabulary projection (the largest
matmul of a small model) for the whole prompt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from prompts.errors import ShopLoRAError
from prompts.render import IGNORE, Rendered

OPTIMIZERS = ("adam", "sgd")


@dataclass
class Batch:
    input_ids: Any  # (B, T) left padded
    attention_mask: Any  # (B, T)
    position_ids: Any  # (B, T): positions restart after the padding, as if unpadded
    targets: Any  # (B, K - 1): the answer tokens predicted from the last K positions, IGNORE elsewhere
    keep: int  # K: logits computed for the last K positions only


def collate(rendered: Sequence[Rendered], pad_id: int, device: Any = "cpu") -> Batch:
    import torch

    width = max(len(r) for r in rendered)
    # One position before the first answer token predicts it, hence + 1.
    keep = max(len(r) - r.prompt_length for r in rendered) + 1
    ids = torch.full((len(rendered), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rendered), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rendered), width), dtype=torch.long)
    for row, r in enumerate(rendered):
        ids[row, width - len(r):] = torch.tensor(r.input_ids)
        labels[row, width - len(r):] = torch.tensor(r.labels)
        mask[row, width - len(r):] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return Batch(ids.to(device), mask.to(device), positions.to(device), labels[:, width - keep + 1:].to(device), keep)


def answer_loss(model: Any, batch: Batch) -> Any:
    """Mean cross-entropy over the batch's answer tokens."""
    import torch.nn.functional as F

    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                   logits_to_keep=batch.keep, use_cache=False).logits
    predicted = logits[:, :-1].float()  # the last position predicts past the answer's end
    return F.cross_entropy(predicted.reshape(-1, predicted.size(-1)), batch.targets.reshape(-1), ignore_index=IGNORE)


def length_batches(rendered: Sequence[Rendered], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped into batches of similar length (little padding), in a shuffled batch order."""
    order = sorted(range(len(rendered)), key=lambda i: (len(rendered[i]), rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def make_optimizer(name: str, params: Sequence[Any], lr: float) -> Any:
    import torch

    if name == "adam":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ShopLoRAError(f"optimizer {name!r} is not one of {', '.join(OPTIMIZERS)}")
