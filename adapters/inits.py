"""Finding the LoRA init an adaptation starts from: a shipped init, a folder made by meta-training, or none."""

from __future__ import annotations

from pathlib import Path

from prompts import ShopLoRAError

from .base import Base
from .files import LoraFiles, read_lora_dir

SHIPPED = Path(__file__).parent / "inits"  # package data: <name>/ with PEFT files + shoplora.json + README.md
DEFAULT = "default"


def shipped_inits() -> dict[str, Path]:
    return {p.name: p for p in sorted(SHIPPED.iterdir()) if p.is_dir() and not p.name.startswith(".")} if SHIPPED.is_dir() else {}


def check_base(files: LoraFiles, base: Base, what: str) -> None:
    """Refuse LoRA weights made for another base model, naming both."""
    fingerprint = files.record.get("base_fingerprint")
    if fingerprint and fingerprint != base.fingerprint:
        raise ShopLoRAError(f"{what} was made for {files.base_model_id} (architecture {fingerprint}), not for the "
                            f"loaded base {base.model_id} ({base.fingerprint}); load that base model instead")


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
        raise ShopLoRAError(f"no init at {init!r}: pass a folder made by meta-training, a shipped init ({names}), "
                            "or none")
    return path


def check_init_exists(init: str | Path | None) -> None:
    """Fail on an init that names nothing before a base model loads (minutes for a 7B one). "default" is left to
    resolve_init: which init it means depends on the loaded base."""
    if not _standard(init) and str(init) != DEFAULT:
        _folder(init)


def resolve_init(init: str | Path | None, base: Base) -> LoraFiles | None:
    """`None`/"none": standard LoRA init. "default": the shipped meta init for this base. Else a shipped init's name
    or a folder path."""
    if _standard(init):
        return None
    if str(init) == DEFAULT:
        for path in shipped_inits().values():
            files = read_lora_dir(path)
            if files.record.get("default") and files.record.get("base_fingerprint") == base.fingerprint:
                return files
        raise ShopLoRAError(f"no shipped meta init for {base.model_id}; pass init=None (CLI: --init none) for a "
                            "standard LoRA init, or init=PATH to one trained with `shoplora meta-train`")
    files = read_lora_dir(_folder(init))
    check_base(files, base, f"init {init}")
    return files
