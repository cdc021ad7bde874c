"""FSDP2 for meta-training: the frozen base sharded over the processes, the LoRA tensors whole on each.

Under `accelerate launch --config_file configs/accelerate/fsdp.yaml`, every decoder layer and then the whole model
are `fully_shard`ed: each process keeps 1/world of every base weight on its device and all-gathers a layer's weights
just before the layer runs (forward, and again in backward), freeing them after. The LoRA tensors are FSDP's
`ignored_params`: never sharded, never all-reduced, so each process's inner loops still train its own tasks alone,
and the recipe averages only the meta-gradients, exactly as under DDP.

The all-gathers are collectives: every process must make the same sequence of forward and backward passes, or the
processes wait on each other forever, or (layers of one shape) silently pair one layer's shards with another's.
train/meta_trainer.py keeps them equal (equal query sizes, spare validation episodes, one loss whose pass count does
not depend on the task) and `PassCounter` checks it after every outer step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

from .config import ConfigError


def requested() -> bool:
    """True in a process started by `accelerate launch` with an FSDP config. (On CPU accelerate reports such a run
    as MULTI_CPU, so the launcher's environment is what says FSDP was asked for.)"""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


@dataclass(frozen=True)
class FsdpSettings:
    reshard_after_forward: bool  # False: keep each layer's gathered weights from forward to backward (more memory)
    # Shard each module of these classes as its own group ((): the model's decoder layer classes, its
    # `_no_split_modules`); None: the whole model as one group (NO_WRAP).
    layer_classes: tuple[str, ...] | None


def settings(config: Any) -> FsdpSettings:
    """The accelerate config's FSDP settings this recipe honours; anything it would not honour is refused here,
    naming the key, so no setting only looks as if it were in force."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import CPUOffloadPolicy

    plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables accelerate launch sets from fsdp_config
    where = "configs/accelerate/fsdp.yaml (fsdp_config)"
    if plugin.fsdp_version != 2:
        raise ConfigError(
            f"{where}: fsdp_version {plugin.fsdp_version}; train.meta shards with FSDP2 "
            "(fully_shard): set fsdp_version: 2"
        )
    refused = {
        "fsdp_offload_params": isinstance(plugin.cpu_offload, CPUOffloadPolicy),
        "fsdp_cpu_ram_efficient_loading": plugin.cpu_ram_efficient_loading,
        "fsdp_activation_checkpointing": plugin.activation_checkpointing,
    }
    for key, on in refused.items():
        if on:
            hint = (
                "use the run config's gradient_checkpointing: true"
                if "activation" in key
                else "every process loads the whole base into CPU memory, then keeps only its shard on the device"
            )
            raise ConfigError(f"{where}: {key} is not supported by train.meta; remove it ({hint})")
    policy = getattr(plugin.auto_wrap_policy, "__name__", plugin.auto_wrap_policy)
    if policy not in (None, "transformer_auto_wrap_policy"):
        raise ConfigError(
            f"{where}: fsdp_auto_wrap_policy {policy!r} is not supported by train.meta; use "
            "TRANSFORMER_BASED_WRAP (one shard group per decoder layer) or NO_WRAP (one group)"
        )
    if config.quantization is not None:
        raise ConfigError(
            "quantization: 4bit cannot be sharded with FSDP here (bitsandbytes' packed 4-bit weights "
            "are no FSDP2 parameters); use configs/accelerate/ddp.yaml for QLoRA, or quantization: null"
        )
    if config.query_loss != "answer":
        raise ConfigError(
            "query_loss: labels cannot run under FSDP: the label scorer makes one or two passes "
            "depending on each episode's labels, so processes would fall out of step; use "
            "query_loss: answer, or configs/accelerate/ddp.yaml"
        )
    classes = None if policy is None else tuple(plugin.transformer_cls_names_to_wrap or ())
    return FsdpSettings(reshard_after_forward=bool(plugin.reshard_after_forward), layer_classes=classes)


def shard_base(model: Any, keep_whole: Iterable[Any], device: Any, fsdp: FsdpSettings) -> dict[str, int]:
    """`fully_shard` the base under PEFT `model` over all processes on `device`, leaving `keep_whole` (the LoRA
    parameters) whole, unsynchronised and moved to `device`. Returns the base's parameter count and this process's
    share of it."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    base = model.get_base_model()
    keep_whole = set(keep_whole)
    classes = fsdp.layer_classes
    if classes == ():
        classes = tuple(getattr(base, "_no_split_modules", None) or ())
    mesh = init_device_mesh(torch.device(device).type, (dist.get_world_size(),))
    options = {"mesh": mesh, "reshard_after_forward": fsdp.reshard_after_forward, "ignored_params": keep_whole}
    layers = [m for m in base.modules() if type(m).__name__ in (classes or ())]
    if classes and not layers:
        raise ConfigError(
            f"fsdp_transformer_layer_cls_to_wrap {list(classes)}: no module of the base model is of "
            "these classes; name its decoder layer class, or remove the key"
        )
    for layer in layers:
        fully_shard(layer, **options)
    fully_shard(base, **options)  # the root group: embeddings, final norm, the (tied) head
    with torch.no_grad():
        for param in keep_whole:  # FSDP moves what it shards, never what it ignores
            param.data = param.data.to(device)
        # The first pass allocates each layer's gathered weights, for good. Made under inference_mode (the recipe's
        # loss-only passes) they would be inference tensors that no later training pass may refill, so one short
        # pass without inference_mode comes first, on every process alike.
        model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=device))
    from torch.distributed.tensor import DTensor

    total = local = 0
    for param in base.parameters():
        if param in keep_whole:
            continue
        total += param.numel()
        local += param.to_local().numel() if isinstance(param, DTensor) else param.numel()
    return {"base_parameters": total, "local_parameters": local, "shard_groups": len(layers) + 1}


class PassCounter:
    """Counts the model's forward passes, to check after each outer step that every process made as many."""

    def __init__(self, model: Any) -> None:
        self.passes = 0
        model.register_forward_pre_hook(self._count)

    def _count(self, *_: Any) -> None:
        self.passes += 1

    def check(self, accelerator: Any, step: int) -> None:
        import torch

        from prompts.errors import ShopLoRAError

        counts = accelerator.gather(torch.tensor([self.passes], device=accelerator.device)).tolist()
        if len(set(counts)) > 1:
            raise ShopLoRAError(
                f"FSDP: after outer step {step} the processes had made {counts} forward passes; they "
                "must make equal numbers (this is a bug: report it with your configs)"
            )
