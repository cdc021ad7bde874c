"""LoRA on the base model, and its tensors as a plain dict (what meta-learning moves and adapters save)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from prompts.errors import ShopLoRAError

ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class LoraSettings:
    """LoRA shape: rank `r`, scale `alpha / r`, dropout, and which linear layers get adapters."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    targets: tuple[str, ...] | str = ALL_LINEAR  # module names such as ("q_proj", "v_proj"), or "all-linear"

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ShopLoRAError(f"lora r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ShopLoRAError(f"lora dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.targets, str):
            object.__setattr__(self, "targets", tuple(self.targets))

    @classmethod
    def from_dict(cls, data: dict) -> "LoraSettings":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ShopLoRAError(f"unknown LoRA settings {sorted(unknown)}; known: r, alpha, dropout, targets")
        return cls(**data)


def attach_lora(model: Any, settings: LoraSettings = LoraSettings()) -> Any:
    """Wrap `model` in a PEFT LoRA model; only the LoRA tensors are trainable (standard init: B = 0)."""
    from peft import LoraConfig, get_peft_model

    targets = settings.targets if isinstance(settings.targets, str) else list(settings.targets)
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def lora_parameters(model: Any) -> dict[str, Any]:
    """The trainable LoRA parameters of a PEFT model, by name."""
    return {name: p for name, p in model.named_parameters() if "lora_" in name}


def lora_state(model: Any) -> dict[str, Any]:
    """A detached copy of the LoRA tensors (the unit meta-learning averages and moves)."""
    return {name: p.detach().clone() for name, p in lora_parameters(model).items()}


def load_lora_state(model: Any, state: dict[str, Any]) -> None:
    """Copy `state` into the model's LoRA tensors in place (names and shapes must match exactly)."""
    import torch

    params = lora_parameters(model)
    if params.keys() != state.keys():
        missing, extra = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
        raise ShopLoRAError(f"LoRA tensors do not match the model (missing {missing[:3]}, unexpected {extra[:3]}); "
                            "was this init made for another base model or LoRA shape?")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(state[name])
