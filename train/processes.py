"""The processes of a meta-training run under accelerate, and what they agree on.

Each process adapts its own tasks; these functions are the only places where processes meet: per-tensor sums in one
flat all-reduce, averaged losses, process 0's init sent to all, and a check that all ended with the same weights.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .config import ConfigError

UNSUPPORTED = {"DEEPSPEED", "MEGATRON_LM", "XLA"}  # these need the model handed to them; inner loops must stay local


def start(output_dir: Path, report_to: str) -> Any:
    """This process's `Accelerator` (cpu=True without a GPU), its share of the CPU threads, and a ConfigError for
    distributed types that would take the inner loops out of our hands."""
    import torch
    from accelerate import Accelerator

    from adapters.trackers import check_report_to

    # cpu=True without a GPU: processes started by `accelerate launch --multi_gpu` or torchrun then join over
    # gloo (accelerate's own --cpu launcher starts one process unless mpirun is installed).
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        project_dir=str(output_dir),
        log_with=check_report_to(report_to),
    )
    launched = "LOCAL_WORLD_SIZE" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ
    if accelerator.device.type == "cpu" and launched:
        # accelerate launch and torchrun set OMP_NUM_THREADS=1 for every process, even a lone one: give each
        # process on this machine its share of the cores instead.
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    kind = accelerator.distributed_type.name
    if kind in UNSUPPORTED:
        raise ConfigError(f"accelerate's {kind} is not supported: use configs/accelerate/ddp.yaml")
    return accelerator


def sum_over_processes(accelerator: Any, tensors: dict[str, Any]) -> dict[str, Any]:
    """Element-wise sums over all processes, as one flat all-reduce (one message, not one per tensor)."""
    import torch

    if accelerator.num_processes == 1:
        return tensors
    flat = accelerator.reduce(torch.cat([t.reshape(-1) for t in tensors.values()]), "sum")
    out, offset = {}, 0
    for key, tensor in tensors.items():
        out[key] = flat[offset : offset + tensor.numel()].view_as(tensor)
        offset += tensor.numel()
    return out


def mean_over_processes(accelerator: Any, values: list[float]) -> float:
    """The mean of every process's `values` together."""
    import torch

    local = torch.tensor([sum(values), len(values)], dtype=torch.float64, device=accelerator.device)
    total, count = accelerator.reduce(local, "sum").tolist()
    return total / count


def broadcast_from_first(accelerator: Any, tensors: dict[str, Any]) -> None:
    """Copy process 0's `tensors` into every process's, in place."""
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast

        for key, tensor in broadcast(dict(tensors)).items():
            tensors[key].data.copy_(tensor)


def digest(tensors: dict[str, Any]) -> str:
    """sha256 of the tensors' bytes (sorted by key): equal on two processes exactly when their weights are."""
    import torch

    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def same_everywhere(value: str) -> bool:
    """Whether every process passed the same `value` (e.g. its weights' `digest`)."""
    from accelerate.utils import gather_object

    return len(set(gather_object([value]))) == 1
