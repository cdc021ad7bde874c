"""The arithmetic of one outer step, for one process's episodes: Reptile's and FOMAML's meta-gradients, the
multitask baseline's SFT steps and the validation losses; and what the outer step trains, with its optimizer and
learning-rate schedule.

Every function works on the model's working LoRA adapter `name`; the init is a dict of tensors held apart from it.
Averaging over processes is the caller's (train/meta_trainer.py, through train/processes.py).
"""

from __future__ import annotations

import math
import random
import time
from functools import partial
from typing import Any, Callable, Sequence

from adapters.lora import load_lora_state, lora_parameters
from adapters.scoring import label_loss
from adapters.training import (
    InnerLoop,
    answer_loss,
    collate,
    length_batches,
    make_optimizer,
    mean_loss,
    train_steps,
)
from prompts.render import Rendered

from .config import MetaConfig
from .episodes import Episode


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier at optimizer step `step`: linear warm-up, then decay to 10%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - 0.9 * progress
    return 1.0


def trained_tensors(config: MetaConfig, live: dict[str, Any], world: int) -> tuple[dict[str, Any], Any, Any]:
    """The tensors being trained, their optimizer and its learning-rate schedule, given `live`, the working
    adapter's parameters. Meta-learning trains the init, held apart from the adapter each inner loop changes, with the
    outer optimizer; multitask trains the adapter's own parameters with the inner-loop optimizer. Warm-up and decay
    follow the outer steps either way."""
    import torch

    if config.algorithm == "multitask":
        init = live
        steps_per_outer = config.meta_batch_size // world * config.inner_steps
        optimizer = make_optimizer(config.inner_optimizer, list(init.values()), config.inner_lr)
    else:
        init = {key: p.detach().clone() for key, p in live.items()}
        steps_per_outer = 1
        optimizer = make_optimizer(config.outer_optimizer, list(init.values()), config.outer_lr)
    factor = partial(
        lr_factor,
        warmup=config.warmup_steps * steps_per_outer,
        total=config.outer_steps * steps_per_outer,
        schedule=config.schedule,
    )
    return init, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def query_gradient(
    model: Any,
    query: Sequence[Rendered],
    *,
    pad_id: int,
    batch_size: int,
    name: str,
    labels: Sequence[Sequence[int]] | None = None,
) -> tuple[dict[str, Any], float]:
    """FOMAML's meta-gradient: the gradient of the query loss over `query` at adapter `name`'s current (adapted)
    weights, taken in chunks of `batch_size`; and that loss. The loss is the mean answer-token cross-entropy, or,
    given `labels` (a classify episode's labels as answer token ids), the right label's cross-entropy among them
    (`adapters.scoring.label_loss`), averaged over the examples."""
    import torch

    params = lora_parameters(model, name)
    grads = {key: torch.zeros_like(p) for key, p in params.items()}
    device = next(iter(params.values())).device
    tokens = sum(len(r) - r.prompt_length for r in query)

    def weighted_loss(chunk: Sequence[Rendered]) -> Any:
        if labels is None:  # chunks weigh by their answer tokens, so the sum is the mean over all of them
            share = sum(len(r) - r.prompt_length for r in chunk) / tokens
            return answer_loss(model, collate(chunk, pad_id, device)) * share
        return label_loss(model, chunk, labels, pad_id) * len(chunk) / len(query)

    total = 0.0
    for param in params.values():
        param.requires_grad_(True)
    model.train()
    try:
        for start in range(0, len(query), batch_size):
            chunk = query[start : start + batch_size]
            loss = weighted_loss(chunk)
            for key, grad in zip(params, torch.autograd.grad(loss, list(params.values()))):
                grads[key] += grad
            total += loss.item()
    finally:
        for param in params.values():
            param.requires_grad_(False)
        model.eval()
    return grads, total


def accumulate(total: dict[str, Any], grads: dict[str, Any], weight: float = 1.0) -> None:
    """total += weight * grads, tensor by tensor, in place."""
    for key in total:
        total[key] += weight * grads[key]


def add_meta_gradient(
    total: dict[str, Any],
    model: Any,
    init: dict[str, Any],
    episode: Episode,
    *,
    algorithm: str,
    inner_loop: InnerLoop,
    pad_id: int,
    rng: random.Random,
    name: str,
    labels: Sequence[Sequence[int]] | None = None,
    init_query_weight: float = 0.0,
) -> tuple[float, float, float]:
    """Adapt adapter `name` from `init` to `episode`'s support set and add the episode's meta-gradient to `total`:
    Reptile's init - adapted, or FOMAML's query-loss gradient at the adapted weights (plus `init_query_weight` times
    the one at the init itself). Returns the query loss after adapting, and the seconds spent in the inner loop and
    on the query set."""
    load_lora_state(model, init, name)
    query = partial(
        query_gradient, model, episode.query, pad_id=pad_id, batch_size=inner_loop.batch_size, name=name, labels=labels
    )
    tick = time.perf_counter()
    if init_query_weight:
        grads, _ = query()
        accumulate(total, grads, init_query_weight)
    query_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    train_steps(model, episode.support, inner_loop, pad_id=pad_id, rng=rng, name=name)
    inner_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    if algorithm == "reptile":
        adapted = lora_parameters(model, name)
        for key in total:  # an outer step along -(init - adapted) moves the init toward adapted
            total[key] += init[key] - adapted[key].detach()
        loss = mean_loss(model, episode.query, pad_id=pad_id, batch_size=inner_loop.batch_size)
    else:
        grads, loss = query()
        accumulate(total, grads)
    return loss, inner_seconds, query_seconds + time.perf_counter() - tick


def multitask_steps(
    model: Any,
    params: list[Any],
    support: Sequence[Rendered],
    steps: int,
    *,
    optimizer: Any,
    scheduler: Any,
    batch_size: int,
    pad_id: int,
    rng: random.Random,
    average: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """`steps` steps of plain SFT on `support` (length-grouped batches, reshuffled when used up) of `params`, the
    adapter's own tensors; `average`, given, turns this process's gradients into their mean over processes."""
    queue: list[list[int]] = []
    for param in params:
        param.requires_grad_(True)
    model.train()
    try:
        for _ in range(steps):
            if not queue:
                queue = length_batches(support, batch_size, rng)
            batch = collate([support[i] for i in queue.pop()], pad_id, params[0].device)
            answer_loss(model, batch).backward()
            if average is not None:
                averaged = average({str(i): p.grad for i, p in enumerate(params)})
                for i, param in enumerate(params):
                    param.grad = averaged[str(i)]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    finally:
        for param in params:
            param.requires_grad_(False)
        model.eval()


def validation_losses(
    model: Any,
    init: dict[str, Any],
    episodes: Sequence[Episode],
    *,
    inner_loop: InnerLoop,
    pad_id: int,
    seed: int,
    name: str,
) -> tuple[list[float], list[float]]:
    """Each episode's query loss from `init`, before and after the inner loop on its support set (seeded by `seed`
    and the task, so every validation adapts alike). Leaves adapter `name` holding `init` again."""
    before, after = [], []
    for episode in episodes:
        load_lora_state(model, init, name)
        before.append(mean_loss(model, episode.query, pad_id=pad_id))
        train_steps(
            model,
            episode.support,
            inner_loop,
            pad_id=pad_id,
            rng=random.Random(f"{seed}:validation:{episode.task}"),
            name=name,
        )
        after.append(mean_loss(model, episode.query, pad_id=pad_id))
    load_lora_state(model, init, name)  # multitask trains the adapter itself: put its weights back
    return before, after
