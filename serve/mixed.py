"""A batch whose rows use different LoRA adapters, as two batched matmuls per layer.

PEFT's `adapter_names` runs, in every LoRA layer and for every adapter of the batch, an indexed copy of that
adapter's rows, two small matmuls and an indexed add: with 4 adapters on CPU that per-op overhead made a mixed batch
0.55x as fast as a batch on one adapter (benchmarks/serve.py). Here each layer stacks its adapters' A and B (scale
folded into B) per row once per batch, and every forward adds `bmm(bmm(x, A_rows), B_rows)`: the same ops whatever
the number of adapters. The base path runs with PEFT's adapters disabled, so only these hooks add LoRA.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence


@contextmanager
def mixed_lora(peft_model: Any, row_adapters: Sequence[str | None]) -> Iterator[None]:
    """Inside, forward passes of `peft_model` on a batch of `len(row_adapters)` rows apply PEFT adapter
    `row_adapters[i]` to row i (None: the bare base model). Vanilla LoRA layers only (no DoRA or other variants)."""
    import torch
    from peft.tuners.lora.layer import Linear as LoraLinear

    names = [name for name in dict.fromkeys(row_adapters) if name is not None]
    slots = [0 if name is None else 1 + names.index(name) for name in row_adapters]  # slot 0: no adapter
    handles = []
    try:
        for module in peft_model.modules():
            if not isinstance(module, LoraLinear):
                continue
            present = [name for name in names if name in module.lora_A]
            if not present:
                continue
            if any(name in module.lora_variant for name in present):
                raise NotImplementedError("mixed batches support vanilla LoRA adapters only")
            handles.append(module.register_forward_hook(_adder(module, names, slots, torch), with_kwargs=True))
        with peft_model.disable_adapter():
            yield
    finally:
        for handle in handles:
            handle.remove()


def _adder(module: Any, names: list[str], slots: list[int], torch: Any):
    """The forward hook of one LoRA layer: per-row A (B, in, r) and B (B, r, out), zero for rows without it."""
    weight = module.base_layer.weight
    rank = max(module.lora_A[name].weight.shape[0] for name in names if name in module.lora_A)
    dtype = next(module.lora_A[name].weight.dtype for name in names if name in module.lora_A)
    a = torch.zeros(len(names) + 1, weight.shape[1], rank, dtype=dtype, device=weight.device)
    b = torch.zeros(len(names) + 1, rank, weight.shape[0], dtype=dtype, device=weight.device)
    with torch.no_grad():
        for slot, name in enumerate(names, start=1):
            if name in module.lora_A:
                lora_a, lora_b = module.lora_A[name].weight, module.lora_B[name].weight  # (r, in), (out, r)
                a[slot, :, : lora_a.shape[0]] = lora_a.T
                b[slot, : lora_a.shape[0]] = lora_b.T * module.scaling[name]
    index = torch.tensor(slots, device=weight.device)
    a_rows, b_rows = a[index], b[index]

    def add(_module, args, kwargs, output):
        x = args[0] if args else kwargs["x"]
        shape = x.shape
        x = x.reshape(shape[0], -1, shape[-1]).to(dtype)  # (B, T, in): bmm wants exactly three dimensions
        delta = torch.bmm(torch.bmm(x, a_rows), b_rows)
        return output + delta.reshape(*shape[:-1], -1).to(output.dtype)

    return add
