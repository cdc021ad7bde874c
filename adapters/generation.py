"""Greedy generation from rendered prompts: batched with left padding, or streamed piece by piece."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Any, Iterator, Sequence

from prompts import Example, ShopLoRAError, TaskSpec
from prompts.render import answer_frame, prompt_ids

from .base import Base


def stop_token_ids(tokenizer: Any) -> list[int]:
    """EOS plus the chat template's end-of-turn token (they differ in some models, e.g. Llama 3)."""
    ids = {tokenizer.eos_token_id}
    end_of_turn = tokenizer(answer_frame(tokenizer)[1], add_special_tokens=False)["input_ids"]
    if len(end_of_turn) == 1:
        ids.add(end_of_turn[0])
    return sorted(i for i in ids if i is not None)


def base_only(base: Base) -> Any:
    """A context in which the base model runs without any LoRA adapter (they are injected into its layers)."""
    return base.peft.disable_adapter() if base.peft is not None else nullcontext()


def generate(
    base: Base,
    spec: TaskSpec,
    inputs: Sequence[str],
    *,
    shots: Sequence[Example] = (),
    max_new_tokens: int = 64,
    batch_size: int = 8,
) -> list[str]:
    """The base model's greedy answers (no adapter), prompted exactly as in training; k-shot with `shots`."""
    with base.lock, base_only(base):
        return generate_with(
            base.model, base.tokenizer, spec, inputs, shots=shots, max_new_tokens=max_new_tokens, batch_size=batch_size
        )


def left_pad(prompts: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    """(ids, attention mask) of prompts padded on the left, so every prompt ends at the last column: where
    generation continues and where label scoring reads the next token."""
    import torch

    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask


def check_context(
    model: Any, prompts: Sequence[Sequence[int]], *, reserve: int = 0, texts: Sequence[str] | None = None
) -> None:
    """Refuse sequences longer than the model's context (plus `reserve` tokens to generate) with a clear error:
    truncating would silently answer a different question, and positions past the context are untrained."""
    limit = getattr(model.config, "max_position_embeddings", None)
    for i, prompt in enumerate(prompts):
        if limit and len(prompt) + reserve > limit:
            room = f" + {reserve} tokens to generate" if reserve else ""
            start = f" (input starts {texts[i][:60]!r})" if texts else ""
            raise ShopLoRAError(
                f"an input is {len(prompt)} tokens with its prompt{room}, over the model's context of "
                f"{limit}: shorten or split it{start}"
            )


def generate_with(
    model: Any,
    tokenizer: Any,
    spec: TaskSpec,
    inputs: Sequence[str],
    *,
    shots: Sequence[Example] = (),
    max_new_tokens: int = 64,
    batch_size: int = 8,
) -> list[str]:
    """Greedy answers from `model` as it is (with whatever adapter is active)."""
    answers: list[str] = []
    for start in range(0, len(inputs), batch_size):
        texts = inputs[start : start + batch_size]
        prompts = [prompt_ids(spec, text, tokenizer, shots) for text in texts]
        check_context(model, prompts, reserve=max_new_tokens, texts=texts)
        answers += generate_prompts(model, tokenizer, prompts, max_new_tokens=max_new_tokens)
    return answers


def generate_prompts(
    model: Any, tokenizer: Any, prompts: list[list[int]], *, max_new_tokens: int = 64, **generate_kwargs: Any
) -> list[str]:
    """Greedy answers to rendered prompts as one left-padded batch. `generate_kwargs` go to `model.generate`
    (serving passes `max_time` and `stop_strings`; its benchmark `min_new_tokens`, so every variant generates as many
    tokens)."""
    import torch

    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, tokenizer.pad_token_id, device)
    if generate_kwargs.get("stop_strings"):  # transformers matches stop strings through the tokenizer's vocabulary
        generate_kwargs["tokenizer"] = tokenizer
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stop_token_ids(tokenizer),
            **generate_kwargs,
        )
    return [tokenizer.decode(row[ids.size(1) :], skip_special_tokens=True).strip() for row in out]


def stream_with(model: Any, tokenizer: Any, spec: TaskSpec, text: str, *, max_new_tokens: int = 64) -> Iterator[str]:
    """The greedy answer to one input, yielded piece by piece while a worker thread generates it."""
    prompt = prompt_ids(spec, text, tokenizer)
    check_context(model, [prompt], reserve=max_new_tokens, texts=[text])
    return stream_prompt(model, tokenizer, prompt, max_new_tokens=max_new_tokens)


def stream_prompt(
    model: Any,
    tokenizer: Any,
    prompt: list[int],
    *,
    max_new_tokens: int = 64,
    stop: threading.Event | None = None,
    **generate_kwargs: Any,
) -> Iterator[str]:
    """The greedy answer to one rendered prompt, piece by piece; `generate_kwargs` go to `model.generate`. Setting
    `stop` (from any thread) ends the generation after the token being computed, even while no piece is read."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    device = next(model.parameters()).device
    ids, mask = left_pad([prompt], tokenizer.pad_token_id, device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    abandoned = threading.Event()

    class StopWhenAbandoned(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            ended = abandoned.is_set() or (stop is not None and stop.is_set())
            return torch.full((input_ids.size(0),), ended, dtype=torch.bool, device=input_ids.device)

    failed: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=stop_token_ids(tokenizer),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([StopWhenAbandoned()]),
                    **generate_kwargs,
                )
        except BaseException as error:  # ends the stream instead of leaving the reader waiting forever
            failed.append(error)
            streamer.end()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        yield from streamer
        if failed:
            raise failed[0]
    finally:
        # A reader that stops early (a closed browser tab) must not leave generation running on the shared model
        # after the caller has released its lock: stop at the next token and wait for the worker.
        abandoned.set()
        worker.join()
