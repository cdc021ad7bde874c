"""Classify by scoring every allowed label as the answer: one pass over the prompts, one pass over a label tree.

The prompts of one task share a long prefix (the system turn with the instruction and the label list, and any
in-context shots): it runs once per call and its KV cache is shared by every input, so each input costs only its
own tokens. With a 27-intent system turn that is most of the prompt.

A label's score is the log-likelihood of its full answer tokens (label + end-of-turn, exactly as trained), so a
label that is a prefix of another ('return' / 'return_item') is still told apart. The labels' tokens form a prefix
tree; its inner nodes run as one extra sequence per prompt whose attention mask lets each node see the prompt's
KV cache and its own ancestors only (tree attention). Shared prefixes run once, and the cache is never copied per
label, so 100 intents cost one short sequence, not 100 forwards.

Contextual calibration (Zhao et al. 2021, "Calibrate before use"): the same prompt with content-free inputs ("N/A",
"[MASK]", "") shows which labels the model favours whatever the message says; dividing each input's label
probabilities by that prior evens it out. It matters most after adapting on a few examples: an adapter learns
that the labels it saw are the likely answers, and without calibration all but stops predicting the others.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Sequence

from prompts import ShopLoRAError, TaskSpec
from prompts.render import Rendered, answer_ids, prompt_ids

from .compat import cache_kwargs, output_cache
from .generation import check_context, left_pad


@dataclass
class LabelTree:
    tokens: list[int]  # inner node -> its token (nodes whose token is followed by more tokens of some label)
    parents: list[int]  # inner node -> its parent inner node, -1 under the root
    depths: list[int]
    paths: list[list[tuple[int, int]]]  # label -> [(inner node whose output predicts the token (-1: prompt), token)]


def label_tree(labels: Sequence[Sequence[int]]) -> LabelTree:
    index: dict[tuple[int, ...], int] = {}
    tree = LabelTree([], [], [], [])
    for ids in labels:
        path, parent = [], -1
        for depth, token in enumerate(ids):
            path.append((parent, token))
            if depth == len(ids) - 1:
                break  # the last token's logit comes from its parent; it predicts nothing itself
            key = tuple(ids[: depth + 1])
            if key not in index:
                index[key] = len(tree.tokens)
                tree.tokens.append(token)
                tree.parents.append(parent)
                tree.depths.append(depth)
            parent = index[key]
        tree.paths.append(path)
    return tree


def _ancestor_mask(tree: LabelTree) -> Any:
    import torch

    n = len(tree.tokens)
    allowed = torch.eye(n, dtype=torch.bool)
    for node in range(n):
        parent = tree.parents[node]
        if parent >= 0:
            allowed[node] |= allowed[parent]  # parents come before children, so their rows are complete
    return allowed


CONTENT_FREE = ("N/A", "[MASK]", "")  # inputs that say nothing: the prior of contextual calibration


def label_scores(
    model: Any,
    tokenizer: Any,
    spec: TaskSpec,
    inputs: Sequence[str],
    *,
    batch_size: int = 8,
    shots: Sequence = (),
    calibrate: bool = False,
) -> list[list[float]]:
    """Log-likelihood of each of `spec.labels` as the answer to each input: a list per input, in label order.
    `calibrate`: contextual calibration instead, log p(label | input) - log p(label | content-free input), where the
    probabilities are normalised over the labels and the second is the mean over CONTENT_FREE; its softmax is the
    calibrated distribution."""
    import torch

    device = next(model.parameters()).device
    tree = label_tree([answer_ids(label, tokenizer) for label in spec.labels])
    ancestors = _ancestor_mask(tree).to(device)
    prompts = [prompt_ids(spec, text, tokenizer, shots) for text in inputs]
    check_context(model, prompts, reserve=max(map(len, tree.paths), default=0), texts=inputs)
    scores: list[list[float]] = []
    if not prompts:
        return scores
    # Probes that differ from their first character bound the prefix to the prompt's part before the input, so an
    # input gets the same scores alone or in any batch.
    probes = [prompt_ids(spec, text, tokenizer, shots) for text in ("0", "x")]
    free = [prompt_ids(spec, text, tokenizer, shots) for text in CONTENT_FREE] if calibrate else []
    with torch.inference_mode():
        prefix = _shared_prefix(model, [*probes, *free, *prompts], device)
        for start in range(0, len(prompts), batch_size):
            batch = [p[prefix.length :] for p in prompts[start : start + batch_size]]
            scores += _score_batch(model, batch, prefix, tokenizer.pad_token_id, tree, ancestors, device).tolist()
        if not calibrate:
            return scores
        # One batch of their own, so the prior is the same whichever inputs come with it.
        prior = _score_batch(
            model, [p[prefix.length :] for p in free], prefix, tokenizer.pad_token_id, tree, ancestors, device
        )
    log_prior = prior.log_softmax(-1).exp().mean(0).log()
    return (torch.tensor(scores).log_softmax(-1) - log_prior).tolist()


@dataclass
class Prefix:
    length: int  # tokens every prompt starts with
    cache: Any  # their KV cache for one sequence (None when there is no shared prefix)
    # Scoring reuses one prefix over many batches, so each gets a copy; a training step uses its prefix once, and
    # takes it as it is (autograd cannot deep-copy a tensor that has a gradient history).
    reused: bool = True

    def for_batch(self, n: int) -> Any:
        """The cache of the prefix for `n` sequences (the forward pass appends to it)."""
        if self.cache is None:
            return None
        cache = copy.deepcopy(self.cache) if self.reused else self.cache
        cache.batch_repeat_interleave(n)
        return cache


def _shared_prefix(model: Any, prompts: list[list[int]], device: Any) -> Prefix:
    """Run the tokens all `prompts` start with once. Every prompt keeps at least its last token, whose output
    predicts the answer's first token."""
    import torch

    length = min(len(p) for p in prompts) - 1
    for i in range(length):
        if any(p[i] != prompts[0][i] for p in prompts):
            length = i
            break
    if length <= 0:
        return Prefix(0, None)
    out = model(input_ids=torch.tensor([prompts[0][:length]], device=device), use_cache=True, logits_to_keep=1)
    return Prefix(length, output_cache(out))


def _score_batch(
    model: Any, prompts: list[list[int]], prefix: Prefix, pad_id: int, tree: LabelTree, ancestors: Any, device: Any
) -> Any:
    """The (prompts, labels) tensor of label log-likelihoods. `prompts` are the parts after the shared prefix,
    padded on the left: the padding sits between the prefix and each prompt's own tokens, masked out, and positions
    continue from the prefix. Differentiable when called outside inference mode, with no prefix cache or with one
    used once (`Prefix.reused=False`, as label_loss makes it)."""
    import torch

    ids, own = left_pad(prompts, pad_id, device)
    n_prompts = len(prompts)
    positions = prefix.length + (own.cumsum(1) - 1).clamp(min=0)
    mask = torch.cat([own.new_ones(n_prompts, prefix.length), own], dim=1)
    width = mask.shape[1]
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=bool(tree.tokens),
        logits_to_keep=1,
        **cache_kwargs(model, prefix.for_batch(n_prompts)),
    )
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (P, V): the answer's first token
    if tree.tokens:
        n = len(tree.tokens)
        dtype = out.logits.dtype if out.logits.is_floating_point() else torch.float32
        allowed = torch.cat(
            [mask.bool()[:, None, :].expand(n_prompts, n, width), ancestors[None].expand(n_prompts, n, n)], dim=2
        )
        additive = torch.zeros(allowed.shape, dtype=dtype, device=device)
        additive.masked_fill_(~allowed, torch.finfo(dtype).min)  # a prepared 4D mask is used as given
        node_ids = torch.tensor(tree.tokens, device=device).expand(n_prompts, n)
        node_positions = positions[:, -1:] + 1 + torch.tensor(tree.depths, device=device)
        nodes = model(
            input_ids=node_ids,
            attention_mask=additive[:, None],
            position_ids=node_positions,
            use_cache=False,
            **cache_kwargs(model, output_cache(out)),
        ).logits
        nodes = torch.log_softmax(nodes.float(), dim=-1)  # (P, N, V)
    totals = []
    for path in tree.paths:
        parents = torch.tensor([p for p, _ in path], device=device)
        tokens = torch.tensor([t for _, t in path], device=device)
        from_prompt = first[:, tokens]  # (P, len)
        if tree.tokens:
            from_nodes = nodes[:, parents.clamp(min=0), tokens]  # (P, len)
            from_prompt = torch.where(parents[None] < 0, from_prompt, from_nodes)
        totals.append(from_prompt.sum(-1))
    return torch.stack(totals, dim=1)


def label_loss(
    model: Any,
    rendered: Sequence[Rendered],
    labels: Sequence[Sequence[int]],
    pad_id: int,
    *,
    share_prefix: bool = True,
) -> Any:
    """Mean cross-entropy of each example's own answer among `labels` (answer token ids, as `answer_ids` makes
    them), each label scored as `label_scores` scores it: the loss of the decision the evaluation measures, with
    gradients. Each example's answer must be one of `labels`. `share_prefix`: the tokens all the prompts start with
    (the system turn) run once, their keys and values repeated over the batch, so backward sums every example's
    gradient into that one pass: the same loss and gradients as whole prompts, for less compute."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    index = {tuple(ids): i for i, ids in enumerate(labels)}
    prompts, gold = [], []
    for r in rendered:
        answer = tuple(r.input_ids[r.prompt_length :])
        if answer not in index:
            raise ShopLoRAError(
                "an example's answer is not one of the labels it is scored against; the label loss "
                "is for classify examples rendered with the same labels"
            )
        prompts.append(r.input_ids[: r.prompt_length])
        gold.append(index[answer])
    tree = label_tree(labels)
    prefix = replace(_shared_prefix(model, prompts, device), reused=False) if share_prefix else Prefix(0, None)
    own = [p[prefix.length :] for p in prompts]
    scores = _score_batch(model, own, prefix, pad_id, tree, _ancestor_mask(tree).to(device), device)
    return F.cross_entropy(scores, torch.tensor(gold, device=device))
