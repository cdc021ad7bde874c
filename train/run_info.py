"""What a results file records about where it ran: package versions, the git commit (and whether the tree was
dirty), and each init's folder, weights hash and making."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

from adapters.files import read_lora_dir
from adapters.record import InitRecord


def init_record(path: Path | None) -> dict:
    """What results.json says about an init: its folder, a hash of its weights, and how it was made."""
    if path is None:
        return {"path": None, "sha256": None, "made": "PEFT's standard LoRA init (A random, B = 0)", "tasks": []}
    record = read_lora_dir(path).record
    if not isinstance(record, InitRecord):  # an adapter folder used as an init: no meta-training to tell
        record = InitRecord(name=record.name)
    how = record.trained_on or f"{len(record.tasks)} meta-train tasks"
    weights = (Path(path) / "adapter_model.safetensors").read_bytes()
    return {
        "path": str(path),
        "sha256": hashlib.sha256(weights).hexdigest(),
        "made": f"{record.algorithm} init {record.name or Path(path).name}: {how}",
        "algorithm": record.algorithm,
        "inner_loop": record.inner_loop.to_dict() if record.inner_loop else None,
        "tasks": record.tasks,
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("shoplora", "torch", "transformers", "peft", "accelerate"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def git_state() -> dict[str, Any]:
    """The commit the code ran at, and whether the working tree had uncommitted changes."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def write_results(path: str | Path, results: Any) -> Path:
    """Write a measurement's results as JSON, whole or not at all (the folder made if needed); returns the path."""
    import json

    from prompts.atomic import write_atomic

    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(results, indent=2))
    print(f"wrote {out}")
    return out
