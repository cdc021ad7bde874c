"""`AdapterStore`: a folder of named adapters, each a PEFT folder with ShopLoRA's record and a model card.

Example: `store = AdapterStore("adapters_store"); store.save(adapter, "acme-returns")`, then
`load_adapter("acme-returns", store=store)` gives an adapter with the same predictions.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from prompts import ShopLoRAError

from .adapter import Adapter
from .base import EMBEDDED, EMBEDDED_ID, Base, load_base, loaded_base
from .files import (
    SCENARIOS_DIR,
    AdapterFileError,
    LoraFiles,
    check_name,
    check_weights,
    delete_lora_dir,
    previous_versions,
    read_lora_dir,
    read_record,
    write_lora_dir,
)
from .init_catalog import check_base
from .lora import remove_lora
from .record import AdapterRecord, AnyRecord


class AdapterStore:
    """Named adapters under `root` (created on first save). Names: lowercase letters, digits, '.', '_', '-'."""

    def __init__(self, root: str | Path = "adapters_store"):
        if not isinstance(root, (str, os.PathLike)) or not str(root):
            raise ShopLoRAError(
                f"AdapterStore(root): root must be a folder path, got {root!r}; e.g. "
                'AdapterStore("adapters_store") (it is created on the first save)'
            )
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ShopLoRAError(f"the adapter store {self.root} is a file; pass a folder (it is created if missing)")

    def path(self, name: str) -> Path:
        return self.root / check_name(name)

    def save(self, adapter: Adapter, name: str, *, overwrite: bool = False) -> Path:
        """Save atomically; over an existing name only with `overwrite=True` (the old version is kept, see
        `previous_versions`)."""
        owners: dict[str, str] = {}  # PEFT adapter -> the first scenario using it, whose folder holds it
        for scenario, peft_name in adapter.weights.items():
            if peft_name != adapter.peft_name:
                owners.setdefault(peft_name, scenario)
        scenarios = {}
        for scenario, entry in adapter.record.scenarios.items():
            peft_name = adapter.weights.get(scenario, adapter.peft_name)
            folder = f"{SCENARIOS_DIR}/{owners[peft_name]}" if peft_name in owners else "."  # "." = the main weights
            scenarios[scenario] = replace(entry, weights=folder)
        record = replace(
            adapter.record, name=name, spec=adapter.spec, temperature=adapter.temperature, scenarios=scenarios
        )
        return write_lora_dir(
            self.path(name),
            state=adapter.state(),
            settings=adapter.settings,
            base_model_id=adapter.base.model_id,
            base_fingerprint=adapter.base.fingerprint,
            record=record,
            overwrite=overwrite,
            scenario_states={owner: adapter.scenario(owner).state() for owner in owners.values()},
        )

    def read(self, name: str) -> LoraFiles:
        return read_lora_dir(self._existing(name))

    def _existing(self, name: str) -> Path:
        path = self.path(name)
        if not (path.exists() or path.is_symlink()):  # a link to a missing version is reported by the read
            known = ", ".join(self.names()) or "none"
            raise AdapterFileError(f"no adapter called {name!r} in {self.root} (stored: {known})")
        return path

    def load(self, name: str, base: Base) -> Adapter:
        """The stored adapter on `base`; refused when it was trained on another base model."""
        files = self.read(name)
        return adapter_from_files(files, base, f"adapter {name!r}")

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()  # links to versions, and real folders saved before them
            if (p.is_dir() or p.is_symlink()) and not p.name.startswith(".")
        )

    def list(self) -> list[dict]:
        """One summary per stored adapter; a broken folder is listed with its problem instead of hidden (weights that
        changed since they were saved included: their checksums are compared, not their tensors read)."""
        rows = []
        for name in self.names():
            try:
                record = read_record(self.root / name)
                check_weights(self.root / name, record)
            except AdapterFileError as error:
                rows.append({"name": name, "error": str(error)})
                continue
            adapter = record if isinstance(record, AdapterRecord) else None  # an init saved in the store: no task
            rows.append(
                {
                    "name": name,
                    "kind": adapter.spec.kind if adapter else None,
                    "labels": len(adapter.spec.labels) if adapter else 0,
                    "examples": adapter.n_examples if adapter else None,
                    "init": adapter.init if adapter else None,
                    "base_model": record.base_model,
                    "created": record.created,
                }
            )
        return rows

    def show(self, name: str) -> AnyRecord:
        """The adapter's record (shoplora.json), checked but without reading its weights."""
        return read_record(self._existing(name))

    def delete(self, name: str) -> None:
        """Remove the adapter and its previous versions. The name is renamed away first, so an interrupted delete
        leaves either the whole adapter or none of it under its name."""
        delete_lora_dir(self._existing(name))

    def previous_versions(self, name: str) -> list[Path]:
        """Versions replaced by `save(..., overwrite=True)`, oldest first (the newest few are kept); copy one over
        the name (or link the name to it) to recover it."""
        return previous_versions(self.path(name))


def adapter_from_files(files: LoraFiles, base: Base, what: str) -> Adapter:
    check_base(files, base, what)
    record = files.record
    if not isinstance(record, AdapterRecord):
        raise AdapterFileError(
            f"{files.path} has no task spec in shoplora.json: it is an init, not an adapter; "
            "pass it as init= to adapt()"
        )
    adapter = Adapter(base, record.spec, files.state, files.settings, record, temperature=record.temperature)
    own: dict[str, str] = {}  # scenario folder name -> the PEFT adapter holding its weights
    try:
        for name, state in files.scenario_states.items():
            own[name] = adapter.new_weights(state)
        for scenario, entry in record.scenarios.items():
            folder = entry.weights or "."  # saved before scenarios had weights of their own: the main weights
            adapter.weights[scenario] = adapter.peft_name if folder == "." else own[folder.split("/", 1)[1]]
    except BaseException:  # a scenario's weights that do not load: what was added before them goes too
        with base.lock:
            for peft_name in own.values():
                remove_lora(base, peft_name)
        adapter.unload()
        raise
    return adapter


def load_adapter(name_or_path: str | Path, *, store: AdapterStore | None = None, base: Base | None = None) -> Adapter:
    """A stored adapter (by name in `store`, or a folder path), on `base` or on the base model it was trained on
    (the embedded model's adapters load the embedded model offline)."""
    path = Path(name_or_path)
    if store is not None and not (path.is_dir() and (path / "adapter_config.json").exists()):
        files = store.read(str(name_or_path))
    else:
        files = read_lora_dir(path)
    if base is None:  # the base already loaded for it in this process, else load it (the embedded one offline)
        base = loaded_base(files.base_model_id) or load_base(
            EMBEDDED if files.base_model_id == EMBEDDED_ID else files.base_model_id
        )
    return adapter_from_files(files, base, f"adapter {name_or_path}")
