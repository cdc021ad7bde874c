"""Files the lab receives: only what a user uploaded through the page is read, within the size cap, then removed.

A Gradio file argument is a path, and an API client can send any path it likes (`{"path": "/etc/...", "meta":
{"_type": "gradio.FileData"}}`); Gradio checks it only for apps it launched itself, not for one mounted on FastAPI
as ours is. So every path is checked here against Gradio's upload folder before anything reads it.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from prompts import ShopLoRAError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # example files: a few thousand rows at most
MAX_FILE_SIZE = f"{MAX_UPLOAD_BYTES // (1024 * 1024)}mb"  # the same cap, as Gradio's upload limit


class UploadError(ShopLoRAError):
    """A file argument that is not a file uploaded through the lab."""


def upload_folder() -> Path:
    """Where Gradio writes uploads (GRADIO_TEMP_DIR, else <tmp>/gradio), resolved."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _inside(path: Path, folder: Path) -> bool:
    return folder in path.parents


def checked_upload(path: str | os.PathLike, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """`path` if it is a regular file inside the upload folder and at most `max_bytes`; else UploadError. Paths
    outside the folder are refused before anything looks at them, so a reply never tells whether they exist."""
    from gradio.utils import get_upload_folder

    folder = upload_folder()
    given = Path(os.path.abspath(path))
    refused = UploadError(
        "only files uploaded through the lab can be read; upload the examples file with the upload box"
    )
    if not (_inside(given, folder) or _inside(given, Path(os.path.abspath(get_upload_folder())))):
        raise refused
    try:
        # resolve() follows links: one inside the folder that points outside it is refused like its target
        resolved = given.resolve(strict=True)
    except (OSError, RuntimeError):
        raise UploadError("the uploaded file is gone (files are removed after teaching); upload it again") from None
    if not _inside(resolved, folder):
        raise refused
    if not resolved.is_file():
        raise UploadError("the upload is not a file; upload a .jsonl or .csv file")
    size = resolved.stat().st_size
    if size > max_bytes:
        raise UploadError(
            f"the uploaded file has {size / 1e6:.1f} MB, over the lab's limit of "
            f"{max_bytes / 1e6:.0f} MB; split it, or adapt from the command line (`shoplora adapt`)"
        )
    return resolved


def remove_upload(path: Path) -> None:
    """Delete an upload and the folder Gradio made for it (one per upload, named by its hash) once it is empty."""
    folder = upload_folder()
    path.unlink(missing_ok=True)
    parent = path.parent
    if parent != folder and folder in parent.parents and not any(parent.iterdir()):
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def uploaded(path: str | os.PathLike | None, max_bytes: int = MAX_UPLOAD_BYTES) -> Iterator[Path | None]:
    """`with uploaded(path) as file:` the checked upload (None for no upload), removed afterwards whatever happens:
    uploads must not pile up in the temp folder."""
    if not path:
        yield None
        return
    file = checked_upload(path, max_bytes)
    try:
        yield file
    finally:
        remove_upload(file)
