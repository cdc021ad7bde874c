"""LoRA adapters on the base model's one shared PeftModel, and their tensors as a plain dict.

All adapters of a base live as named adapters on a single PeftModel (the base weights are never copied), so many
adapters can be loaded at once and switched per request. Tensor dicts use PEFT's file keys (adapter name removed),
so a dict from one adapter loads into another, into a file, and into plain PEFT.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Any

from prompts.errors import ShopLoRAError

ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class LoraSettings:
    """LoRA shape: rank `r`, scale `alpha / r`, dropout, and which linear layers get adapters."""

    r: int = 16  # vLLM's default max_lora_rank is 16: higher ranks do not load there unless it is raised
    alpha: int = 32
    dropout: float = 0.0
    targets: tuple[str, ...] | str = ALL_LINEAR  # module names such as ("q_proj", "v_proj"), or "all-linear"

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ShopLoRAError(f"lora r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ShopLoRAError(f"lora dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.targets, str):
            object.__setattr__(self, "targets", tuple(sorted(self.targets)))

    @classmethod
    def from_dict(cls, data: dict) -> "LoraSettings":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ShopLoRAError(f"unknown LoRA settings {sorted(unknown)}; known: r, alpha, dropout, targets")
        return cls(**data)

    def to_dict(self) -> dict:
        targets = self.targets if isinstance(self.targets, str) else list(self.targets)
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout, "targets": targets}

    def peft_config(self) -> Any:
        from peft import LoraConfig

        targets = self.targets if isinstance(self.targets, str) else list(self.targets)
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets, task_type="CAUSAL_LM"
        )


def add_lora(base: Any, name: str = "default", settings: LoraSettings = LoraSettings()) -> Any:
    """Add LoRA adapter `name` (standard init: B = 0) to the base's shared PeftModel and make it active.

    The PeftModel is created on first use; an existing adapter of the same name is replaced.
    """
    from peft import get_peft_model

    if base.peft is None:
        with warnings.catch_warnings():
            # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`: a FutureWarning on every run
            # that users cannot act on. Only that message is silenced.
            warnings.filterwarnings(
                "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
            )
            base.peft = get_peft_model(base.model, settings.peft_config(), adapter_name=name)
    else:
        if name in base.peft.peft_config:
            remove_lora(base, name)
        base.peft.add_adapter(name, settings.peft_config())
    base.peft.set_adapter(name)
    for param in base.peft.parameters():  # set_adapter may mark the active adapter trainable; training decides
        param.requires_grad_(False)
    return base.peft


def remove_lora(base: Any, name: str) -> None:
    """Drop adapter `name` from the base's PeftModel (its memory is freed)."""
    if base.peft is not None and name in base.peft.peft_config:
        if list(base.peft.peft_config) == [name]:
            # PEFT cannot delete the last adapter: add a placeholder so the shared wrapper survives.
            base.peft.add_adapter("_empty", LoraSettings(r=1, targets=("q_proj",)).peft_config())
        if name in base.peft.active_adapters:  # switch first: PEFT warns when the active adapter is deleted
            base.peft.set_adapter(next(other for other in base.peft.peft_config if other != name))
            for param in base.peft.parameters():  # set_adapter marks the new active adapter trainable
                param.requires_grad_(False)
        base.peft.delete_adapter(name)


def lora_parameters(model: Any, name: str = "default") -> dict[str, Any]:
    """Adapter `name`'s LoRA parameters, keyed as in PEFT's files ('...q_proj.lora_A.weight')."""
    marker = f".{name}."
    return {key.replace(marker, "."): p for key, p in model.named_parameters() if "lora_" in key and marker in key}


def lora_state(model: Any, name: str = "default") -> dict[str, Any]:
    """A detached copy of adapter `name`'s LoRA tensors (the unit meta-learning averages and moves)."""
    return {key: p.detach().clone() for key, p in lora_parameters(model, name).items()}


def load_lora_state(model: Any, state: dict[str, Any], name: str = "default") -> None:
    """Copy `state` into adapter `name`'s LoRA tensors in place (keys and shapes must match exactly)."""
    import torch

    params = lora_parameters(model, name)
    if params.keys() != state.keys():
        missing, extra = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
        raise ShopLoRAError(
            f"LoRA tensors do not match the model (missing {missing[:2]}, unexpected {extra[:2]}); "
            "was this made for another base model or LoRA shape?"
        )
    with torch.no_grad():
        for key, param in params.items():
            if param.shape != state[key].shape:
                raise ShopLoRAError(
                    f"LoRA tensor {key} has shape {tuple(state[key].shape)}, the model expects "
                    f"{tuple(param.shape)}: the LoRA rank or base model differs"
                )
            param.copy_(state[key])
