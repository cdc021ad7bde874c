"""LoRA adapter folders on disk: PEFT's files plus ShopLoRA's record and a model card, written atomically.

A folder holds `adapter_config.json` and `adapter_model.safetensors` (so `PeftModel.from_pretrained`, vLLM and
LoRAX load it), `shoplora.json` (what it is: spec, base model, init, metrics...) and `README.md` (a model card).
Writes go to a temp folder beside the target and are renamed into place; a crash never leaves half a folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompts.atomic import staging_dir
from prompts.errors import ShopLoRAError
from prompts.spec import NAME_PATTERN  # task and adapter names follow one rule

from .lora import LoraSettings

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
RECORD_FILE = "shoplora.json"
CARD_FILE = "README.md"
REQUIRED = (CONFIG_FILE, WEIGHTS_FILE, RECORD_FILE)
SCENARIOS_DIR = "scenarios"  # scenarios with weights of their own: each a PEFT folder of its own inside
VLLM_MAX_LORA_RANK = 16  # vLLM's default --max-lora-rank


class AdapterFileError(ShopLoRAError):
    """An adapter folder that is missing, partial, corrupted, or not safetensors."""


@dataclass
class LoraFiles:
    """What an adapter folder holds, read and checked."""

    path: Path
    settings: LoraSettings
    state: dict[str, Any]  # PEFT file keys -> tensors
    record: dict
    base_model_id: str
    scenario_states: dict[str, dict[str, Any]] = field(default_factory=dict)  # SCENARIOS_DIR/<name>/ weights


def module_names(state: dict[str, Any]) -> list[str]:
    """The module names that carry LoRA tensors ('q_proj', ...): explicit targets load in vLLM, 'all-linear' not."""
    return sorted({key.split(".lora_")[0].rsplit(".", 1)[-1] for key in state})


def compatibility_problems(settings: LoraSettings, state: dict[str, Any], base_model_id: str) -> list[str]:
    """What would stop this adapter from loading in vLLM or LoRAX as they are usually run."""
    problems = []
    if settings.r > VLLM_MAX_LORA_RANK:
        problems.append(f"rank {settings.r} is over vLLM's default max_lora_rank {VLLM_MAX_LORA_RANK}: start vLLM "
                        f"with --max-lora-rank {settings.r}")
    if os.path.isabs(base_model_id) or base_model_id.startswith("."):
        problems.append(f"the base model is a local path ({base_model_id}); vLLM and LoRAX need a hub id")
    if any("lm_head" in key or "embed_tokens" in key for key in state):
        problems.append("LoRA on the LM head or embeddings is not supported by vLLM")
    return problems


def model_card(name: str, base_model_id: str, record: dict) -> str:
    spec = record.get("spec", {})
    metrics = record.get("metrics", {})
    lines = ["---", f"base_model: {base_model_id}", "library_name: peft", "tags:", "- lora", "- shoplora", "---", "",
             f"# {name}", "", f"A ShopLoRA LoRA adapter for `{base_model_id}`."]
    if spec:
        lines += ["", f"- task: {spec.get('kind')} — {spec.get('instruction')}"]
        if spec.get("labels"):
            lines.append(f"- labels: {', '.join(spec['labels'])}")
    if record.get("init"):
        lines.append(f"- trained from: {record['init']}")
    if record.get("kind") == "init":
        lines += [f"- meta-trained init: {record.get('algorithm')} over {len(record.get('tasks', []))} tasks of "
                  f"{record.get('suite')}, on {record.get('device')} in {record.get('seconds', 0) / 60:.0f} min "
                  f"({record.get('created')})",
                  f"- inner loop reused at adaptation: {json.dumps(record.get('inner_loop'))}"]
        if record.get("trained_on"):
            lines.append(f"- {record['trained_on']}")
    scenarios = record.get("scenarios", {})
    if len(scenarios) > 1:
        lines.append("- scenarios: " + ", ".join(
            f"{name} ({'these weights' if entry.get('weights', '.') == '.' else entry['weights'] + '/'})"
            for name, entry in scenarios.items()))
    if record.get("n_examples"):
        lines.append(f"- examples: {record['n_examples']}")
    if record.get("contextual_calibration"):
        lines.append("- label scores use contextual calibration (ShopLoRA divides out each label's probability on "
                     "content-free inputs; plain PEFT gives the raw scores)")
    if metrics:
        lines.append(f"- metrics: {json.dumps(metrics)}")
    lines += ["", "Load it with ShopLoRA (`adapters.load_adapter`) or plain PEFT:", "", "```python",
              "from peft import PeftModel", f"model = PeftModel.from_pretrained(base_model, \"{name}\")", "```", ""]
    return "\n".join(lines)


def write_lora_dir(target: Path, *, state: dict[str, Any], settings: LoraSettings, base_model_id: str, record: dict,
                   base_fingerprint: str | None = None, overwrite: bool = False,
                   scenario_states: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write an adapter folder atomically. Over an existing folder only with `overwrite=True`, and then the previous
    version is kept beside it as `.NAME.previous-<time>` so a mistaken overwrite can be undone (the newest
    KEEP_PREVIOUS of them: an adapter saved after every update must not fill the disk). `scenario_states`
    (scenario name -> tensors) go to `scenarios/<name>/`, each a PEFT folder of its own."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise AdapterFileError(f"{target} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    if not state:
        raise AdapterFileError("no LoRA tensors to save")
    scenario_states = {check_name(name, "scenario"): s for name, s in (scenario_states or {}).items()}
    record = {**record, "base_model": base_model_id, "base_fingerprint": base_fingerprint,
              "lora": {**settings.to_dict(), "targets": module_names(state)},
              "compatibility": compatibility_problems(settings, state, base_model_id)}
    with staging_dir(target) as staging:
        _write_peft(staging, state, settings, base_model_id)
        for name, tensors in scenario_states.items():
            _write_peft(staging / SCENARIOS_DIR / name, tensors, settings, base_model_id)
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        (staging / CARD_FILE).write_text(model_card(target.name, base_model_id, record))
        if target.exists():
            os.replace(target, _previous_slot(target))
        os.replace(staging, target)
    for old in previous_versions(target)[:-KEEP_PREVIOUS]:
        shutil.rmtree(old, ignore_errors=True)
    return target


KEEP_PREVIOUS = 3  # replaced versions kept per adapter


def previous_versions(target: Path) -> list[Path]:
    """The `.NAME.previous-<time>` folders beside `target`, oldest first."""
    return sorted(target.parent.glob(f".{target.name}.previous-*"), key=lambda p: p.stat().st_mtime_ns)


def _previous_slot(target: Path) -> Path:
    """`.NAME.previous-<time>` beside `target`, numbered when saved more than once in the same second."""
    stem = target.parent / f".{target.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}"
    slot, n = stem, 1
    while slot.exists():
        slot, n = Path(f"{stem}-{n}"), n + 1
    return slot


def _write_peft(folder: Path, state: dict[str, Any], settings: LoraSettings, base_model_id: str) -> None:
    """PEFT's two files: what `PeftModel.from_pretrained`, vLLM and LoRAX read."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=module_names(state), task_type="CAUSAL_LM",
                        base_model_name_or_path=base_model_id, inference_mode=True)
    config.save_pretrained(folder)
    tensors = {key: t.detach().to("cpu").contiguous() for key, t in state.items()}
    save_file(tensors, folder / WEIGHTS_FILE, metadata={"format": "pt"})


def _read_weights(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path / WEIGHTS_FILE)
    except (SafetensorError, OSError) as error:
        raise AdapterFileError(f"{path}/{WEIGHTS_FILE} is corrupted or missing ({error}); delete the folder and "
                               "save it again") from None


def read_record(path: Path) -> dict:
    """An adapter folder's shoplora.json after the same checks as `read_lora_dir`, reading only the weights'
    header, not the tensors (listings and per-request lookups need only the record)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    record = _read_json(path)[1]
    try:
        with safe_open(path / WEIGHTS_FILE, "pt") as weights:
            weights.keys()
    except (SafetensorError, OSError) as error:
        raise AdapterFileError(f"{path}/{WEIGHTS_FILE} is corrupted ({error}); delete the folder and save it "
                               "again") from None
    return record


def _read_json(path: Path) -> tuple[dict, dict]:
    """(adapter_config.json, shoplora.json) of a checked folder: complete, safetensors, readable JSON."""
    if not path.is_dir():
        raise AdapterFileError(f"no adapter folder at {path}")
    if (path / "adapter_model.bin").exists() and not (path / WEIGHTS_FILE).exists():
        raise AdapterFileError(f"{path} holds adapter_model.bin, a pickle that can run code when loaded; ShopLoRA "
                               "loads safetensors only (re-save it with safe_serialization=True)")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise AdapterFileError(f"{path} is incomplete (missing {', '.join(missing)}): it was not fully written; "
                               "delete it and save or train it again")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
        record = json.loads((path / RECORD_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdapterFileError(f"{path}: a JSON file is corrupted ({error}); delete the folder and save it again") from None
    return config, record


def read_lora_dir(path: Path) -> LoraFiles:
    """Read and check an adapter folder; a partial, corrupted or pickle-based folder is an AdapterFileError."""
    path = Path(path)
    config, record = _read_json(path)
    state = _read_weights(path)
    folders = {entry.get("weights") for entry in record.get("scenarios", {}).values()} - {None, "."}
    scenario_states = {}
    for folder in sorted(folders):  # only names the store wrote: never a path outside the adapter folder
        name = folder.removeprefix(f"{SCENARIOS_DIR}/")
        if folder != f"{SCENARIOS_DIR}/{name}":
            raise AdapterFileError(f"{path}/{RECORD_FILE} points scenario weights at {folder!r}, outside "
                                   f"{SCENARIOS_DIR}/: the record was edited or corrupted; save the adapter again")
        scenario_states[check_name(name, "scenario")] = _read_weights(path / folder)
    targets = config.get("target_modules")
    settings = LoraSettings(r=int(config["r"]), alpha=int(config["lora_alpha"]),
                            dropout=float(config.get("lora_dropout", 0.0)),
                            targets=targets if isinstance(targets, str) else tuple(targets))
    return LoraFiles(path, settings, state, record, str(config.get("base_model_name_or_path") or ""),
                     scenario_states)


def check_name(name: str, what: str = "adapter") -> str:
    """An adapter (or scenario) name is a plain lowercase folder name, so it can never point outside its store."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise ShopLoRAError(f"{what} name {name!r} is not allowed: use 1-64 lowercase letters, digits, '.', '_' or "
                            "'-', starting with a letter or digit (e.g. 'acme-returns')")
    return name
