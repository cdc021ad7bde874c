"""LoRA adapter folders on disk: PEFT's files plus ShopLoRA's record and a model card, written atomically.

A folder holds `adapter_config.json` and `adapter_model.safetensors` (so `PeftModel.from_pretrained`, vLLM and
LoRAX load it), `shoplora.json` (what it is: spec, base model, init, metrics, the SHA-256 of each weights file) and
`README.md` (a model card). Writes go to a temp folder beside the target, renamed to a version folder
`.NAME.v-<time_ns>`; NAME is a symlink to the current version, swapped in one rename, so NAME always resolves to a
complete adapter (the old or the new) and the versions it no longer points to are the previous ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prompts.atomic import remove_entry, staging_dir, staging_prefix
from prompts.errors import ShopLoRAError
from prompts.spec import NAME_PATTERN  # task and adapter names follow one rule

from .card import model_card
from .lora import LoraSettings
from .record import AdapterRecord, AnyRecord, RecordError, record_from_json

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
    record: AnyRecord
    base_model_id: str
    scenario_states: dict[str, dict[str, Any]] = field(default_factory=dict)  # SCENARIOS_DIR/<name>/ weights


def module_names(state: dict[str, Any]) -> list[str]:
    """The module names that carry LoRA tensors ('q_proj', ...): explicit targets load in vLLM, 'all-linear' not."""
    return sorted({key.split(".lora_")[0].rsplit(".", 1)[-1] for key in state})


def compatibility_problems(settings: LoraSettings, state: dict[str, Any], base_model_id: str) -> list[str]:
    """What would stop this adapter from loading in vLLM or LoRAX as they are usually run."""
    problems = []
    if settings.r > VLLM_MAX_LORA_RANK:
        problems.append(
            f"rank {settings.r} is over vLLM's default max_lora_rank {VLLM_MAX_LORA_RANK}: start vLLM "
            f"with --max-lora-rank {settings.r}"
        )
    if os.path.isabs(base_model_id) or base_model_id.startswith("."):
        problems.append(f"the base model is a local path ({base_model_id}); vLLM and LoRAX need a hub id")
    if any("lm_head" in key or "embed_tokens" in key for key in state):
        problems.append("LoRA on the LM head or embeddings is not supported by vLLM")
    return problems


def write_lora_dir(
    target: Path,
    *,
    state: dict[str, Any],
    settings: LoraSettings,
    base_model_id: str,
    record: AnyRecord,
    base_fingerprint: str | None = None,
    overwrite: bool = False,
    scenario_states: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write an adapter folder atomically. Over an existing folder only with `overwrite=True`, and then the previous
    version is kept beside it (`previous_versions`) so a mistaken overwrite can be undone (the newest KEEP_PREVIOUS
    of them: an adapter saved after every update must not fill the disk). `scenario_states` (scenario name ->
    tensors) go to `scenarios/<name>/`, each a PEFT folder of its own. NaN or inf tensors are refused."""
    target = Path(target)
    if _present(target) and not overwrite:
        raise AdapterFileError(f"{target} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    if not state:
        raise AdapterFileError("no LoRA tensors to save")
    scenario_states = {check_name(name, "scenario"): s for name, s in (scenario_states or {}).items()}
    for what, tensors in [("", state), *((f"scenario {name!r}: ", s) for name, s in scenario_states.items())]:
        if (key := _nonfinite(tensors)) is not None:
            raise AdapterFileError(
                f"not saving {target.name}: {what}{key} holds NaN or inf values, so training "
                "diverged; train it again with a lower learning rate or fewer steps"
            )
    record = replace(
        record,
        base_model=base_model_id,
        base_fingerprint=base_fingerprint,
        lora={**settings.to_dict(), "targets": module_names(state)},
        compatibility=compatibility_problems(settings, state, base_model_id),
    )
    _finish_deletes(target)
    with staging_dir(target) as staging:
        _write_peft(staging, state, settings, base_model_id)
        for name, tensors in scenario_states.items():
            _write_peft(staging / SCENARIOS_DIR / name, tensors, settings, base_model_id)
        written = _weights_files(f"{SCENARIOS_DIR}/{name}" for name in scenario_states)
        record.weights_sha256 = {file: _sha256(staging / file) for file in written}
        (staging / RECORD_FILE).write_text(json.dumps(record.to_json(), indent=2, default=str) + "\n")
        (staging / CARD_FILE).write_text(model_card(target.name, base_model_id, record))
        _put_in_place(staging, target)
    for old in previous_versions(target)[:-KEEP_PREVIOUS]:
        remove_entry(old)
    return target


KEEP_PREVIOUS = 3  # replaced versions kept per adapter
LINKS = os.name == "posix"  # Windows needs a privilege for symlinks, and renaming one over another is not reliable


def _put_in_place(staging: Path, target: Path) -> None:
    """Make the written `staging` folder the adapter called `target`: rename it to a new version folder, then rename
    a symlink to that over `target`, one atomic step. Without symlinks, the two renames of before (the current
    folder aside, the new one in): a kill between them leaves the old version whole in `.NAME.previous-<time>`."""
    version = target.parent / f".{target.name}.v-{time.time_ns()}"
    link = _new_link(target, version) if LINKS else None
    if link is None:
        if _present(target):
            os.replace(target, _previous_slot(target))
        os.replace(staging, target)
        return
    aside = None
    try:
        if target.is_dir() and not target.is_symlink():
            # A folder saved before versions were links. A rename cannot put a link over a folder, so this overwrite
            # moves the folder aside to `.NAME.previous-<time>` (a previous version) first: a kill right then leaves
            # no NAME, and the old adapter whole there. Later overwrites swap the link.
            aside = _previous_slot(target)
            os.replace(target, aside)
        os.replace(staging, version)
        os.replace(link, target)
    except BaseException:
        link.unlink(missing_ok=True)
        if _current_version(target) != version:  # not swapped in: a version no one ever loaded, not a previous one
            shutil.rmtree(version, ignore_errors=True)
        if aside is not None and not _present(target):  # an error, not a kill: the old folder goes back
            os.replace(aside, target)
        raise


def _new_link(target: Path, version: Path) -> Path | None:
    """A symlink to `version` under a staging name beside `target` (left by a kill, the next save removes it), or
    None where the filesystem has no symlinks (FAT, some network mounts)."""
    link = target.parent / f"{staging_prefix(target)}link{time.time_ns()}"
    try:
        os.symlink(version.name, link, target_is_directory=True)  # relative: the store can be moved or copied
    except OSError:
        return None
    return link


def _present(target: Path) -> bool:
    return target.exists() or target.is_symlink()  # a link whose version folder is gone still holds the name


def _version_pattern(target: Path) -> re.Pattern:
    """A version folder of `target` (`.NAME.v-<ns>`, or `.NAME.previous-<time>` from before links), and nothing of
    an adapter whose name merely starts like it (`acme` vs `acme.v-2`)."""
    return re.compile(rf"^\.{re.escape(target.name)}\.(?:v-(\d+)|previous-\d{{8}}-\d{{6}}(?:-\d+)?)$")


def previous_versions(target: Path) -> list[Path]:
    """The versions of `target` it no longer points to, oldest first: `.NAME.v-<ns>` folders (and `.NAME.previous-
    <time>` ones saved before versions were links). Copy one over NAME, or link NAME to it, to restore it."""
    current = _current_version(target)
    pattern = _version_pattern(target)
    folders = [p for p in target.parent.glob(f".{target.name}.*") if pattern.match(p.name) and p != current]
    return sorted(folders, key=lambda p: _saved_ns(p, pattern))


def _current_version(target: Path) -> Path | None:
    """The version folder the link `target` points to; None for a real folder, or a link made by hand to a folder
    of its own elsewhere (which is not ours to delete)."""
    if not target.is_symlink():
        return None
    version = target.parent / os.readlink(target)
    return version if version.parent == target.parent and _version_pattern(target).match(version.name) else None


def _saved_ns(folder: Path, pattern: re.Pattern) -> int:
    """When a version was saved: in its name, or (`.previous-<time>` folders, named to the second) its mtime."""
    number = pattern.match(folder.name)[1]
    return int(number) if number else folder.stat().st_mtime_ns


def delete_lora_dir(target: Path) -> None:
    """Remove the adapter `target` and the versions it owns. NAME goes first, in one rename to a
    `.NAME.deleting-<ns>` marker, so an interrupted delete leaves the whole adapter or nothing under its name; the
    next save under the name finishes it (`_finish_deletes`)."""
    owned = [*previous_versions(target), *filter(None, [_current_version(target)])]
    marker = target.parent / f".{target.name}.deleting-{time.time_ns()}"
    os.replace(target, marker)
    for folder in [*owned, marker]:  # the marker last: while it is there, the next save knows a delete was cut off
        remove_entry(folder)


def _finish_deletes(target: Path) -> None:
    """Finish deletes of `target` that a kill cut off: every version older than their marker was the deleted
    adapter's, so a new adapter under the name does not inherit them as its previous versions."""
    pattern = _version_pattern(target)
    for marker in target.parent.glob(f".{target.name}.deleting-*"):
        if not (found := re.fullmatch(rf"\.{re.escape(target.name)}\.deleting-(\d+)", marker.name)):
            continue
        for folder in previous_versions(target):
            if _saved_ns(folder, pattern) < int(found[1]):
                remove_entry(folder)
        remove_entry(marker)


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

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=module_names(state),
        task_type="CAUSAL_LM",
        base_model_name_or_path=base_model_id,
        inference_mode=True,
    )
    config.save_pretrained(folder)
    tensors = {key: t.detach().to("cpu").contiguous() for key, t in state.items()}
    save_file(tensors, folder / WEIGHTS_FILE, metadata={"format": "pt"})


def _read_weights(path: Path, file: str = WEIGHTS_FILE) -> dict[str, Any]:
    """The tensors of `path/file` (the adapter's own weights, or a scenario's)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(path / file)
    except (SafetensorError, OSError) as error:
        raise AdapterFileError(
            f"{path}/{file} is corrupted or missing ({error}); delete the folder and save it again"
        ) from None
    if (key := _nonfinite(state)) is not None:  # what a checksum cannot catch: adapters saved before checksums
        raise AdapterFileError(
            f"{path}/{file}: {key} holds NaN or inf values, so every score would be NaN; {_recover(path)}"
        )
    return state


def _recover(path: Path) -> str:
    return (
        f"restore a previous version (the .{path.name}.v-* folders beside it, oldest first in "
        "AdapterStore.previous_versions) or train it again"
    )


def _nonfinite(state: dict[str, Any]) -> str | None:
    """The first tensor holding NaN or inf, if any."""
    import torch

    return next((key for key, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)


def _sha256(file: Path) -> str:
    with open(file, "rb") as data:
        return hashlib.file_digest(data, "sha256").hexdigest()


def _weights_files(scenario_folders: Iterable[str]) -> list[str]:
    """The weights files of an adapter folder, relative to it: its own and those of its scenario folders."""
    return [WEIGHTS_FILE, *(f"{folder}/{WEIGHTS_FILE}" for folder in sorted(scenario_folders))]


def check_weights(path: Path, record: AnyRecord) -> None:
    """Refuse weights files that changed since they were saved (a SHA-256 each in the record; adapters saved before
    checksums have none and pass: the NaN check at load is all they get)."""
    saved = record.weights_sha256
    if not saved:
        return
    for file in _weights_files(_scenario_folders(path, record)):
        try:
            found = _sha256(path / file)
        except OSError as error:
            raise AdapterFileError(f"{path}/{file} cannot be read ({error}); {_recover(path)}") from None
        if found != saved.get(file):
            raise AdapterFileError(
                f"{path}/{file} changed since it was saved (SHA-256 {found[:12]}..., saved "
                f"{str(saved.get(file))[:12]}...): it is corrupted or was edited; "
                f"{_recover(path)}"
            )


def read_record(path: Path) -> AnyRecord:
    """An adapter folder's shoplora.json after the checks of `read_lora_dir` that read only the weights' header,
    not the whole file (per-request lookups need only the record; `check_weights` adds the checksums)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    record = _read_json(path)[1]
    try:
        with safe_open(path / WEIGHTS_FILE, "pt") as weights:
            weights.keys()
    except (SafetensorError, OSError) as error:
        raise AdapterFileError(
            f"{path}/{WEIGHTS_FILE} is corrupted ({error}); delete the folder and save it again"
        ) from None
    return record


def _read_json(path: Path) -> tuple[dict, AnyRecord]:
    """(adapter_config.json, the record in shoplora.json) of a checked folder: complete, safetensors, readable
    JSON, a record whose fields have the right types."""
    if not path.is_dir():
        if path.is_symlink():
            raise AdapterFileError(f"{path} points to {os.readlink(path)}, which is gone; {_recover(path)}")
        raise AdapterFileError(f"no adapter folder at {path}")
    if (path / "adapter_model.bin").exists() and not (path / WEIGHTS_FILE).exists():
        raise AdapterFileError(
            f"{path} holds adapter_model.bin, a pickle that can run code when loaded; ShopLoRA "
            "loads safetensors only (re-save it with safe_serialization=True)"
        )
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise AdapterFileError(
            f"{path} is incomplete (missing {', '.join(missing)}): it was not fully written; "
            "delete it and save or train it again"
        )
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
        data = json.loads((path / RECORD_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdapterFileError(
            f"{path}: a JSON file is corrupted ({error}); delete the folder and save it again"
        ) from None
    try:
        return config, record_from_json(data, where=str(path / RECORD_FILE))
    except RecordError as error:
        raise AdapterFileError(str(error)) from None


def read_lora_dir(path: Path) -> LoraFiles:
    """Read and check an adapter folder; a partial, corrupted or pickle-based folder is an AdapterFileError."""
    path = Path(path)
    config, record = _read_json(path)
    check_weights(path, record)
    state = _read_weights(path)
    scenario_states = {
        name: _read_weights(path, f"{folder}/{WEIGHTS_FILE}")
        for folder, name in _scenario_folders(path, record).items()
    }
    targets = config.get("target_modules")
    settings = LoraSettings(
        r=int(config["r"]),
        alpha=int(config["lora_alpha"]),
        dropout=float(config.get("lora_dropout", 0.0)),
        targets=targets if isinstance(targets, str) else tuple(targets),
    )
    return LoraFiles(path, settings, state, record, str(config.get("base_model_name_or_path") or ""), scenario_states)


def _scenario_folders(path: Path, record: AnyRecord) -> dict[str, str]:
    """The record's scenario weight folders (`scenarios/<name>` -> name): only names the store writes, never a path
    outside the adapter folder."""
    scenarios = record.scenarios.values() if isinstance(record, AdapterRecord) else ()
    folders = {scenario.weights for scenario in scenarios} - {None, "."}
    named = {}
    for folder in sorted(folders):
        name = folder.removeprefix(f"{SCENARIOS_DIR}/")
        if folder != f"{SCENARIOS_DIR}/{name}":
            raise AdapterFileError(
                f"{path}/{RECORD_FILE} points scenario weights at {folder!r}, outside "
                f"{SCENARIOS_DIR}/: the record was edited or corrupted; save the adapter again"
            )
        named[folder] = check_name(name, "scenario")
    return named


def check_name(name: str, what: str = "adapter") -> str:
    """An adapter (or scenario) name is a plain lowercase folder name, so it can never point outside its store."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise ShopLoRAError(
            f"{what} name {name!r} is not allowed: use 1-64 lowercase letters, digits, '.', '_' or "
            "'-', starting with a letter or digit (e.g. 'acme-returns')"
        )
    return name
