"""The transformers calls whose names are changing, made here once for every version pyproject.toml allows.

transformers 5.x renamed a model's KV-cache argument and output field from `past_key_values` to `cache` (the old
name warns on every forward and goes in 5.40), and `gradient_checkpointing_enable` to
`activation_checkpointing_enable` (the old name goes in v6). transformers 4.56 knows only the old names. Each model
class is asked which name its own forward takes, so a model whose code has not been migrated still gets the name it
reads.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


@functools.lru_cache(maxsize=None)
def _cache_keyword(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """Keyword arguments that hand KV `cache` to `model`'s forward (a PeftModel or a transformers model); none for
    no cache, since even `past_key_values=None` warns."""
    if cache is None:
        return {}
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {_cache_keyword(type(inner)): cache}


def output_cache(output: Any) -> Any:
    """The KV cache a forward returned (`use_cache=True`), under whichever name this transformers gives it."""
    fields = getattr(type(output), "__dataclass_fields__", {})
    return output.cache if "cache" in fields else output.past_key_values


def enable_checkpointing(model: Any) -> None:
    """Activation (gradient) checkpointing with the non-reentrant checkpoint, which needs no input gradients."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
