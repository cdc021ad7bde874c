"""Atomic writes: a file or folder appears complete under its name or not at all (temp beside it, then rename).

Everything ShopLoRA writes for later (adapters, checkpoints, the converted model, results, exported tasks) goes
through here, so an interrupted run never leaves something half-written that a later one would trust.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A fresh folder beside `target` to write into; the caller renames it into place (`os.replace`) before the
    block ends, with whatever policy it needs for an existing `target`. Left over on an error, it is removed; left
    over by a kill, the next staging folder for the same target removes it (`remove_stale_staging`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(target), dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; stores and caches may be shared by a machine's users
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


STALE_AFTER = 3600  # seconds: a staging folder of another machine, or one named before PIDs were, untouched this long


def staging_prefix(target: Path) -> str:
    """`.NAME.saving-<pid>-<host>-`: the writer's PID and a hash of its machine's name, so a later writer can tell a
    folder whose process is gone (killed mid-save) from one a running process is still filling."""
    return f".{target.name}.saving-{os.getpid()}-{_host_tag()}-"


def remove_stale_staging(target: Path) -> None:
    """Remove what killed writers of `target` left beside it: staging entries of a process of this machine that is no
    longer running, and those of other machines (a shared store) or without a PID only after STALE_AFTER."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.saving-(?:(\d+)-([0-9a-f]{{8}})-)?[a-z0-9_]+$")
    for entry in target.parent.glob(f".{target.name}.saving-*"):
        match = pattern.match(entry.name)
        if match and _stale(entry, match[1], match[2]):
            remove_entry(entry)


def _stale(entry: Path, pid: str | None, host: str | None) -> bool:
    if pid is not None and host == _host_tag() and os.name == "posix":  # os.kill(pid, 0) would kill it on Windows
        return not _running(int(pid))
    try:
        return time.time() - entry.lstat().st_mtime > STALE_AFTER
    except FileNotFoundError:  # its writer renamed it into place meanwhile
        return False


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def remove_entry(path: Path) -> None:
    """Remove a folder, file or symlink (never what a symlink points to); gone already is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


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
