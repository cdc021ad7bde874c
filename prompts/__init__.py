"""What a task is and how examples become model text. No torch here."""

from . import suite
from .errors import DataError, ShopLoRAError, TaskNotFoundError
from .loaders import infer_labels, load_examples, load_inputs
from .render import render
from .spec import Example, TaskSpec

__all__ = [
    "DataError",
    "Example",
    "ShopLoRAError",
    "TaskNotFoundError",
    "TaskSpec",
    "infer_labels",
    "load_examples",
    "load_inputs",
    "render",
    "suite",
]
