"""The Python API around one base model and its LoRA adapters."""

from .base import Base, ModelLoadError, load_base
from .generation import generate

__all__ = ["Base", "ModelLoadError", "generate", "load_base"]
