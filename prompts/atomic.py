"""Atomic writes: a file or folder appears complete under its name or not at all (temp beside it, then rename).

Everything ShopLoRA writes for later (adapters, checkpoints, the converted model, results, exported tasks) goes
through here, so an interrupted run never leaves something half-written that a later one would trust.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A fresh folder beside `target` to write into; the caller renames it into place (`os.replace`) before the
    block ends, with whatever policy it needs for an existing `target`. Left over on an error, it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; stores and caches may be shared by a machine's users
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_dir(staging: Path, target: Path) -> None:
    """Put `staging` in place of `target`, which may exist: the old one is moved aside first and removed after, so
    at every moment `target` is either the old folder or the new one."""
    aside = target.parent / f".{target.name}.replaced-{os.getpid()}"
    if target.exists():
        os.replace(target, aside)
    os.replace(staging, target)
    shutil.rmtree(aside, ignore_errors=True)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write to a temp file beside `path` and rename it into place: a reader never sees half a file."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
        os.chmod(temp, 0o644)  # mkstemp makes it private; results are for reading
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
