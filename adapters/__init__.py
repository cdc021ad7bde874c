"""The Python API around one base model and its LoRA adapters."""

from .base import Base, ModelLoadError, load_base

__all__ = ["Base", "ModelLoadError", "load_base"]
