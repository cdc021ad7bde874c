"""The catalog of LoRA inits an adaptation can start from: the shipped ones (package data in the folder inits/ beside
this module), a folder made by meta-training, or none."""

from __future__ import annotations

from pathlib import Path

from prompts import ShopLoRAError

from .base import Base
from .files import LoraFiles, read_lora_dir
from .record import InitRecord

SHIPPED = Path(__file__).parent / "inits"  # package data: <name>/ with PEFT files + shoplora.json + README.md
DEFAULT = "default"


def shipped_inits() -> dict[str, Path]:
    if not SHIPPED.is_dir():
        return {}
    return {p.name: p for p in sorted(SHIPPED.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def check_base(files: LoraFiles, base: Base, what: str) -> None:
    """Refuse LoRA weights made for another base model, naming both. When the loaded model has the name the weights
    were made for, the model under that name was replaced since: say so, instead of naming one model twice."""
    fingerprint = files.record.base_fingerprint
    if not fingerprint or fingerprint == base.fingerprint:
        return
    made_for = files.base_model_id or files.record.base_model or "an unrecorded base model"
    loaded = f"{base.model_id} ({base.architecture}; architecture {base.fingerprint})"
    if made_for == base.model_id:
        raise ShopLoRAError(
            f"{what} was made for {made_for} when that model had architecture {fingerprint}; the "
            f"model under that name now is another one ({base.architecture}; architecture "
            f"{base.fingerprint}): it was replaced since. Load the model it was made for from where it "
            "is now (CLI: --model PATH, Python: base=load_base(PATH)), or adapt again on this one"
        )
    raise ShopLoRAError(
        f"{what} was made for {made_for} (architecture {fingerprint}), not for the loaded base "
        f"{loaded}; load {made_for} instead (CLI: --model {made_for})"
    )


def _standard(init: str | Path | None) -> bool:
    return init is None or str(init).lower() == "none"


def _folder(init: str | Path) -> Path:
    """A shipped init's name or a folder path -> its folder, or an error naming the choices."""
    shipped = shipped_inits()
    path = Path(init)
    if not path.exists() and str(init) in shipped:
        path = shipped[str(init)]
    if not path.exists():
        names = ", ".join(shipped) or "none shipped"
        raise ShopLoRAError(
            f"no init at {init!r}: pass a folder made by meta-training, a shipped init ({names}), or none"
        )
    return path


def check_init_exists(init: str | Path | None) -> None:
    """Fail on an init that names nothing before a base model loads (minutes for a 7B one). "default" is left to
    resolve_init: which init it means depends on the loaded base."""
    if not _standard(init) and str(init) != DEFAULT:
        _folder(init)


def resolve_init(init: str | Path | None, base: Base) -> LoraFiles | None:
    """`None`/"none": standard LoRA init. "default": the shipped init marked default for this base (for the embedded
    model the multi-task init, which the benchmark found ahead of the meta init). Else a shipped init's name or a
    folder path."""
    if _standard(init):
        return None
    if str(init) == DEFAULT:
        for path in shipped_inits().values():
            files = read_lora_dir(path)
            record = files.record
            if isinstance(record, InitRecord) and record.default and record.base_fingerprint == base.fingerprint:
                return files
        raise ShopLoRAError(
            f"no shipped default init for {base.model_id}; pass init=None (CLI: --init none) for a "
            "standard LoRA init, or init=PATH to one trained with `shoplora meta-train`"
        )
    files = read_lora_dir(_folder(init))
    check_base(files, base, f"init {init}")
    return files


def trained_base_settings(inits: list[str | Path | None]) -> dict[str, str | None]:
    """The `dtype` and `quantization` the base had when `inits` were meta-trained, as their shoplora.json record
    them, so they are evaluated on the same base: {} when none records them. Inits trained on differently
    quantised bases cannot share one base: an error says so."""
    recorded = []
    for init in inits:
        if _standard(init) or str(init) == DEFAULT:
            continue
        record = read_lora_dir(_folder(init)).record
        config = (record.config if isinstance(record, InitRecord) else None) or {}
        if "quantization" in config:
            recorded.append((str(init), {key: config.get(key) for key in ("dtype", "quantization")}))
    if len({settings["quantization"] for _, settings in recorded}) > 1:
        made = ", ".join(f"{init} on quantization {settings['quantization']}" for init, settings in recorded)
        raise ShopLoRAError(
            f"the inits were meta-trained on different bases ({made}); evaluate them in separate "
            "grids (methods: ...) so each gets the base it was trained on"
        )
    return recorded[0][1] if recorded else {}
