"""The model meta-training trains: the frozen base (in the config's dtype, 4-bit, or sharded with FSDP) carrying one
working LoRA adapter, which starts as the standard LoRA init or as a trained init (`start_from`)."""

from __future__ import annotations

from typing import Any

from adapters.base import Base, load_base
from adapters.compat import enable_checkpointing
from adapters.init_catalog import resolve_init
from adapters.lora import add_lora, load_lora_state, lora_parameters

from . import sharding
from .config import ConfigError, MetaConfig


def load_model(
    config: MetaConfig, adapter: str, device: Any, fsdp: sharding.FsdpSettings | None, rank: int, world: int
) -> tuple[Base, Any, sharding.PassCounter | None]:
    """The base, the model with LoRA adapter `adapter` on `device` (its base sharded when `fsdp` is given), and the
    pass counter that checks every process makes the same passes (None without FSDP)."""
    import torch

    dtype = config.dtype
    if fsdp is not None and dtype == "auto" and device.type == "cuda":
        dtype = "bfloat16"  # what auto means on a GPU (adapters.base); the base loads on the CPU first here
    # Under FSDP the whole base passes through CPU memory once; sharding moves only this process's part over.
    base = load_base(
        config.base_model,
        dtype=dtype,
        quantization=config.quantization,
        device="cpu" if fsdp is not None else str(device),
    )
    if config.gradient_checkpointing:
        enable_checkpointing(base.model)
    torch.manual_seed(config.seed)  # the same standard LoRA init on every process
    model = add_lora(base, adapter, config.lora_settings())
    if config.start_from is not None:
        load_start(model, base, config, adapter)
    if fsdp is None:
        return base, model, None
    held = sharding.shard_base(model, lora_parameters(model, adapter).values(), device, fsdp)
    print(
        f"process {rank} of {world}: FSDP holds {held['local_parameters']} of the base's "
        f"{held['base_parameters']} parameters ({held['shard_groups']} shard groups)",
        flush=True,
    )
    return base, model, sharding.PassCounter(model)


def load_start(model: Any, base: Base, config: MetaConfig, adapter: str) -> None:
    """Put the `start_from` init's tensors into `adapter` (a resume then replaces them with the checkpoint's)."""
    files = resolve_init(config.start_from, base)
    if files is None:
        return  # "none": the standard init, as null
    ours, theirs = config.lora_settings(), files.settings
    if (theirs.r, theirs.alpha) != (ours.r, ours.alpha):  # the same rank with another alpha loads, wrongly scaled
        raise ConfigError(
            f"start_from {config.start_from!r} has LoRA r={theirs.r}, alpha={theirs.alpha}, but "
            f"this config asks for r={ours.r}, alpha={ours.alpha}; set lora_r and lora_alpha to "
            "the init's"
        )
    load_lora_state(model, files.state, adapter)  # refuses other target modules, naming them
