"""Classify by scoring every allowed label as the answer: one pass over the prompt, then all labels from its cache.

A label's score is the log-likelihood of its full answer tokens (label + end-of-turn, exactly as trained), so a
label that is a prefix of another ('return' / 'return_item') is still told apart. The prompt is run once per input;
its KV cache is repeated for the labels, which are a few tokens each, so 100 intents cost little more than 2.
"""

from __future__ import annotations

from typing import Any, Sequence

from prompts import TaskSpec
from prompts.render import answer_ids, prompt_ids


def label_scores(model: Any, tokenizer: Any, spec: TaskSpec, inputs: Sequence[str], *, batch_size: int = 8,
                 shots: Sequence = ()) -> list[list[float]]:
    """Log-likelihood of each of `spec.labels` as the answer to each input: a list per input, in label order."""
    import torch

    device = next(model.parameters()).device
    labels = [answer_ids(label, tokenizer) for label in spec.labels]
    n_labels, longest = len(labels), max(map(len, labels))
    # Label tokens as inputs (all but each label's last token) and as targets (all of them), right padded.
    label_inputs = torch.full((n_labels, max(longest - 1, 1)), tokenizer.pad_token_id, dtype=torch.long)
    label_targets = torch.zeros((n_labels, longest), dtype=torch.long)
    label_mask = torch.zeros((n_labels, longest), dtype=torch.bool)
    for i, ids in enumerate(labels):
        label_inputs[i, : len(ids) - 1] = torch.tensor(ids[:-1], dtype=torch.long)
        label_targets[i, : len(ids)] = torch.tensor(ids)
        label_mask[i, : len(ids)] = True
    label_inputs, label_targets, label_mask = label_inputs.to(device), label_targets.to(device), label_mask.to(device)
    scores: list[list[float]] = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            prompts = [prompt_ids(spec, text, tokenizer, shots) for text in inputs[start : start + batch_size]]
            scores += _score_batch(model, prompts, tokenizer.pad_token_id, label_inputs, label_targets, label_mask,
                                   device)
    return scores


def _score_batch(model: Any, prompts: list[list[int]], pad_id: int, label_inputs: Any, label_targets: Any,
                 label_mask: Any, device: Any) -> list[list[float]]:
    import torch

    n_prompts, width = len(prompts), max(map(len, prompts))
    n_labels = label_inputs.size(0)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (P, V): the answer's first token
    logprobs = first[:, label_targets[:, 0]].unsqueeze(-1)  # (P, L, 1)
    if label_targets.size(1) > 1:
        cache = out.past_key_values
        cache.batch_repeat_interleave(n_labels)  # every prompt's cache once per label
        rows = n_prompts * n_labels
        step_ids = label_inputs.repeat(n_prompts, 1)  # (P*L, M-1)
        step_mask = torch.cat([mask.repeat_interleave(n_labels, 0), torch.ones_like(step_ids)], dim=1)
        start = positions[:, -1:].repeat_interleave(n_labels, 0) + 1
        step_positions = start + torch.arange(step_ids.size(1), device=device)
        rest = model(input_ids=step_ids, attention_mask=step_mask, position_ids=step_positions,
                     past_key_values=cache, use_cache=True).logits
        rest = torch.log_softmax(rest.float(), dim=-1)  # (P*L, M-1, V)
        targets = label_targets[:, 1:].repeat(n_prompts, 1)
        picked = rest.gather(-1, targets.unsqueeze(-1)).squeeze(-1).view(n_prompts, n_labels, -1)
        logprobs = torch.cat([logprobs, picked], dim=-1)
    total = (logprobs * label_mask.unsqueeze(0)).sum(-1)  # padding past a label's end counts nothing
    return total.tolist()
