"""Greedy generation from rendered prompts, batched with left padding."""

from __future__ import annotations

from typing import Sequence

from prompts import Example, TaskSpec
from prompts.render import answer_frame, prompt_ids

from .base import Base


def stop_token_ids(tokenizer) -> list[int]:
    """EOS plus the chat template's end-of-turn token (they differ in some models, e.g. Llama 3)."""
    ids = {tokenizer.eos_token_id}
    end_of_turn = tokenizer(answer_frame(tokenizer)[1], add_special_tokens=False)["input_ids"]
    if len(end_of_turn) == 1:
        ids.add(end_of_turn[0])
    return sorted(i for i in ids if i is not None)


def generate(base: Base, spec: TaskSpec, inputs: Sequence[str], *, shots: Sequence[Example] = (),
             max_new_tokens: int = 64, batch_size: int = 8) -> list[str]:
    """The model's greedy answer to each input, prompted exactly as in training (k-shot when `shots` are given)."""
    import torch

    tokenizer, model = base.tokenizer, base.model
    answers: list[str] = []
    for start in range(0, len(inputs), batch_size):
        prompts = [prompt_ids(spec, text, tokenizer, shots) for text in inputs[start : start + batch_size]]
        width = max(map(len, prompts))
        # Left padding keeps every prompt's last token at the end, where generation continues.
        input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts], device=base.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=base.device)
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=stop_token_ids(tokenizer))
        answers += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
    return answers
