"""Answer-only LoRA training steps: the inner loop shared by few-shot adaptation and meta-training.

Loss is on answer tokens only, so the LM head runs only on the last positions of each sequence: batches are left
padded, every answer ends at the last column, and `logits_to_keep` skips the vocabulary projection (the largest
matmul of a small model) for the whole prompt.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Sequence

from prompts.errors import ShopLoRAError
from prompts.render import IGNORE, Rendered

from .compat import cache_kwargs, output_cache
from .lora import lora_parameters

OPTIMIZERS = ("adam", "sgd")
LOSSES = ("answer", "labels")


def known_settings(cls: type, data: dict, what: str) -> dict:
    """`data` if every key is a field of dataclass `cls`; else an error naming the unknown ones and the known."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        known = ", ".join(f.name for f in fields(cls))
        raise ShopLoRAError(f"unknown {what} settings {sorted(unknown)}; known: {known}")
    return data


# What each inner-loop setting must be. Configs that hold these settings under their own names (train.config's
# MetaConfig) check them with `inner_loop_problem` too, so a bad value fails there naming the config field.
INNER_LOOP_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "steps": (lambda value: value >= 1, "must be >= 1"),
    "lr": (lambda value: value > 0, "must be > 0"),
    "optimizer": (lambda value: value in OPTIMIZERS, f"must be one of {', '.join(OPTIMIZERS)}"),
    "batch_size": (lambda value: value >= 1, "must be >= 1"),
    "max_length": (lambda value: value >= 8, "must be >= 8"),
    "min_epochs": (lambda value: value >= 0, "must be >= 0"),
    "loss": (lambda value: value in LOSSES, f"must be one of {', '.join(LOSSES)}"),
}


def inner_loop_problem(settings: dict[str, Any]) -> tuple[str, str] | None:
    """The first of `settings` (InnerLoop field names to values) that breaks its rule, as (name, rule), e.g.
    ("lr", "must be > 0"); None when all keep them."""
    for name, value in settings.items():
        ok, rule = INNER_LOOP_RULES.get(name, (lambda _: True, ""))
        if not ok(value):
            return name, rule
    return None


@dataclass(frozen=True)
class InnerLoop:
    """How an adapter is trained from an init. Meta-training records these in the init; adaptation reuses them, so
    an init is used exactly the way it was meta-learned on support sets of up to steps x batch_size examples."""

    steps: int = 30  # optimizer steps
    lr: float = 2e-3
    optimizer: str = "adam"  # "adam" (AdamW, no weight decay) or "sgd"
    batch_size: int = 8  # examples per step
    max_length: int = 256  # tokens of prompt + answer; longer examples are refused with a message
    # Read by nothing since adaptation's budget moved to adapters.recipe; kept so that inits and adapters saved
    # with it still load.
    min_epochs: int = 1
    # "answer": cross-entropy of the answer tokens; "labels" (classify): of the right label among the task's labels,
    # scored as prediction scores them (adapters.scoring.label_loss): the decision the adapter is judged on.
    loss: str = "answer"
    # Run the prompt part every example of a batch shares (the system turn: instruction and label list, often most
    # of the tokens) once per step and broadcast its keys and values over the batch: the same loss and the same
    # gradients as running every prompt whole, for several times less compute per step.
    share_prefix: bool = False

    def __post_init__(self) -> None:
        problem = inner_loop_problem(asdict(self))
        if problem is not None:
            name, rule = problem
            raise ShopLoRAError(f"inner-loop {name} {rule}, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "InnerLoop":
        return cls(**known_settings(cls, data, "inner-loop"))

    def to_dict(self) -> dict:
        return asdict(self)


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
        ids[row, width - len(r) :] = torch.tensor(r.input_ids)
        labels[row, width - len(r) :] = torch.tensor(r.labels)
        mask[row, width - len(r) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return Batch(ids.to(device), mask.to(device), positions.to(device), labels[:, width - keep + 1 :].to(device), keep)


def answer_loss(model: Any, batch: Batch, cache: Any = None) -> Any:
    """Mean cross-entropy over the batch's answer tokens (after the KV `cache` of a shared prefix, if given)."""
    import torch.nn.functional as F

    logits = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=batch.keep,
        use_cache=cache is not None,
        **cache_kwargs(model, cache),
    ).logits
    predicted = logits[:, :-1].float()  # the last position predicts past the answer's end
    return F.cross_entropy(predicted.reshape(-1, predicted.size(-1)), batch.targets.reshape(-1), ignore_index=IGNORE)


MIN_SHARED_PREFIX = 16  # tokens: below this, running the prefix apart saves less than it costs


def shared_prefix_length(rendered: Sequence[Rendered]) -> int:
    """Tokens all of `rendered` start with, leaving each at least one prompt token (it predicts the answer)."""
    first = rendered[0].input_ids
    length = min(r.prompt_length for r in rendered) - 1
    for r in rendered[1:]:
        length = min(length, next((i for i, (a, b) in enumerate(zip(first, r.input_ids)) if a != b), length))
    return max(length, 0)


def shared_prefix_loss(model: Any, rendered: Sequence[Rendered], pad_id: int, device: Any) -> Any:
    """The answer loss of `rendered` (one batch) with their shared prefix run once (see InnerLoop.share_prefix);
    the plain answer loss when they share too little. Gradients flow through the prefix: its keys and values are
    repeated over the batch, so backward sums every example's gradient into the one prefix pass. (Without that
    gradient the LoRA cannot learn how to read the label list in the system turn, which costs accuracy.)"""
    import torch

    length = shared_prefix_length(rendered)
    if length < MIN_SHARED_PREFIX:
        return answer_loss(model, collate(rendered, pad_id, device))
    cache = output_cache(
        model(input_ids=torch.tensor([rendered[0].input_ids[:length]], device=device), use_cache=True, logits_to_keep=1)
    )
    cache.batch_repeat_interleave(len(rendered))
    rest = collate([Rendered(r.input_ids[length:], r.labels[length:]) for r in rendered], pad_id, device)
    mask = torch.cat([rest.attention_mask.new_ones(len(rendered), length), rest.attention_mask], dim=1)
    return answer_loss(model, replace(rest, attention_mask=mask, position_ids=rest.position_ids + length), cache=cache)


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


def train_steps(
    model: Any,
    rendered: Sequence[Rendered],
    loop: InnerLoop,
    *,
    pad_id: int,
    rng: random.Random,
    name: str = "default",
    on_step: Callable[[int, float], bool] | None = None,
    labels: Sequence[Sequence[int]] | None = None,
) -> list[float]:
    """`loop.steps` optimizer steps on adapter `name`'s LoRA tensors over `rendered` (epochs of length-grouped
    batches). `on_step(step, loss)` is called after each step; returning True stops early. Returns the losses.
    With loop.loss "labels", `labels` (every label's answer ids, see prompts.render.answer_ids) must be given and
    every example's answer must be one of them."""
    if loop.loss == "labels" and labels is None:
        raise ShopLoRAError("the label loss needs the task's labels; train a classify task, or use loss: answer")
    params = list(lora_parameters(model, name).values())
    if not params:
        raise ShopLoRAError(f"the model has no LoRA adapter {name!r} to train")
    device = params[0].device
    optimizer = make_optimizer(loop.optimizer, params, loop.lr)
    losses: list[float] = []
    queue: list[list[int]] = []
    for param in params:
        param.requires_grad_(True)
    model.train()
    try:
        for step in range(loop.steps):
            if not queue:
                queue = length_batches(rendered, loop.batch_size, rng)
            batch = [rendered[i] for i in queue.pop()]
            if loop.loss == "labels":
                from .scoring import label_loss

                loss = label_loss(model, batch, labels, pad_id, share_prefix=loop.share_prefix)
            elif loop.share_prefix:
                loss = shared_prefix_loss(model, batch, pad_id, device)
            else:
                loss = answer_loss(model, collate(batch, pad_id, device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if on_step is not None and on_step(step, losses[-1]):
                break
    finally:
        for param in params:
            param.requires_grad_(False)
        model.eval()
    return losses


def mean_loss(model: Any, rendered: Sequence[Rendered], *, pad_id: int, batch_size: int = 16) -> float:
    """Mean answer-token loss over `rendered`, without gradients (validation and query loss)."""
    import torch

    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(rendered), batch_size):
            chunk = rendered[start : start + batch_size]
            n = sum(len(r) - r.prompt_length for r in chunk)
            total += answer_loss(model, collate(chunk, pad_id, device)).item() * n
            tokens += n
    return total / max(tokens, 1)
