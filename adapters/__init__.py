"""The Python API around one base model and its LoRA adapters.

from adapters import load_base, adapt, load_adapter, AdapterStore
base = load_base()
adapter = adapt(base, "returns.jsonl", instruction="Classify the customer's message.", labels=[...])
adapter.predict(["where is my parcel??"])
"""

from .adapt import adapt
from .adapter import ABSTAIN, Adapter, ExtractionError, Prediction
from .base import Base, ModelLoadError, load_base
from .discover import Cluster, Discovery, discover
from .files import AdapterFileError
from .generation import generate
from .record import AdapterRecord, FitReport, InitRecord
from .store import AdapterStore, load_adapter

__all__ = [
    "ABSTAIN",
    "Adapter",
    "AdapterFileError",
    "AdapterRecord",
    "AdapterStore",
    "Base",
    "Cluster",
    "Discovery",
    "ExtractionError",
    "FitReport",
    "InitRecord",
    "ModelLoadError",
    "Prediction",
    "adapt",
    "discover",
    "generate",
    "load_adapter",
    "load_base",
]
