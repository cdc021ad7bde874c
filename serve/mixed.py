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
    `row_adapters[i]` to row i (None: the bare base model). Vanilla LoRA on linear layers (plain, bf16 or
    bitsandbytes 4-bit bases) only: no DoRA or other variants."""
    import torch
    from peft.tuners.lora.layer import LoraLayer

    names = [name for name in dict.fromkeys(row_adapters) if name is not None]
    slots = [0 if name is None else 1 + names.index(name) for name in row_adapters]  # slot 0: no adapter
    handles = []
    try:
        for module in peft_model.modules():
            # Any LoRA layer over a linear map: PEFT's own Linear, and its bitsandbytes Linear4bit/Linear8bitLt,
            # which are LoraLayers but not subclasses of Linear (skipping them served the bare base on 4-bit).
            if not isinstance(module, LoraLayer):
                continue
            present = [name for name in names if name in module.lora_A]
            if not present:
                continue
            if not all(isinstance(module.lora_A[name], torch.nn.Linear) for name in present):
                raise NotImplementedError(
                    f"mixed batches support LoRA on linear layers only, not on {type(module.get_base_layer()).__name__}"
                )
            if any(name in getattr(module, "lora_variant", {}) for name in present):
                raise NotImplementedError("mixed batches support vanilla LoRA adapters only")
            handles.append(module.register_forward_hook(_adder(module, names, slots, torch), with_kwargs=True))
        if names and not handles:  # never serve the bare base under an adapter's name
            raise NotImplementedError(f"no LoRA layer of {names} found to apply in a mixed batch")
        with peft_model.disable_adapter():
            yield
    finally:
        for handle in handles:
            handle.remove()


def _adder(module: Any, names: list[str], slots: list[int], torch: Any):
    """The forward hook of one LoRA layer: per-row A (B, in, r) and B (B, r, out), zero for rows without it."""
    # The layer's sizes, not its base weight's shape: a 4-bit weight is stored packed as (in * out / 2, 1).
    n_in, n_out = module.in_features, module.out_features
    first = next(module.lora_A[name].weight for name in names if name in module.lora_A)
    rank = max(module.lora_A[name].weight.shape[0] for name in names if name in module.lora_A)
    dtype, device = first.dtype, first.device
    a = torch.zeros(len(names) + 1, n_in, rank, dtype=dtype, device=device)
    b = torch.zeros(len(names) + 1, rank, n_out, dtype=dtype, device=device)
    with torch.no_grad():
        for slot, name in enumerate(names, start=1):
            if name in module.lora_A:
                lora_a, lora_b = module.lora_A[name].weight, module.lora_B[name].weight  # (r, in), (out, r)
                a[slot, :, : lora_a.shape[0]] = lora_a.T
                b[slot, : lora_a.shape[0]] = lora_b.T * module.scaling[name]
    index = torch.tensor(slots, device=device)
    a_rows, b_rows = a[index], b[index]

    def add(_module, args, kwargs, output):
        x = args[0] if args else kwargs["x"]
        shape = x.shape
        x = x.reshape(shape[0], -1, shape[-1]).to(dtype)  # (B, T, in): bmm wants exactly three dimensions
        delta = torch.bmm(torch.bmm(x, a_rows), b_rows)
        # Added before rounding to the output's dtype, as PEFT's Linear does (on a bf16 base the LoRA is fp32).
        return (output + delta.reshape(*shape[:-1], -1)).to(output.dtype)

    return add
