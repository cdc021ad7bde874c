"""The `real-v1` suite: real-data tasks read from public datasets on disk.

`real-v1` reads the datasets described in `<data dir>/README.md` (one folder each, `data.jsonl` + `PROVENANCE.md`;
their specs and row mappings are in prompts/real_datasets.py). The folder is `$SHOPLORA_DATA_DIR`, else
`<repo root>/../shared/data/real`; without it the suite is empty, so a fresh clone still works. Files are read only
when a task's examples are asked for, then cached. Hub datasets, for users with internet, are in prompts/hub.py.
"""

from __future__ import annotations

import os
from functools import lru_cache, partial
from pathlib import Path

from .curation import check_labels, split_parts
from .errors import DataError, ShopLoRAError
from .loaders import read_rows  # the reader user files go through: same checks and messages
from .real_datasets import OUT_OF_SCOPE, REAL_DATASETS, REAL_DATASETS_BY_FOLDER, SUITE, RealDataset
from .spec import Example
from .task import Task

DATA_ENV = "SHOPLORA_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "real"
# A dataset split name -> our part. Validation rows join train: the suite has no validation part.
SPLIT_TO_PART = {"train": "train", "dev": "train", "valid": "train", "validation": "train", "test": "test"}


def _configured_dir() -> Path:
    configured = os.environ.get(DATA_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_DATA_DIR


def _data_file(directory: Path, dataset: RealDataset) -> Path:
    return directory / dataset.folder / "data.jsonl"


def data_dir() -> Path | None:
    """The real-data folder ($SHOPLORA_DATA_DIR, else ../shared/data/real), or None when it holds no dataset."""
    directory = _configured_dir()
    return directory if any(_data_file(directory, d).is_file() for d in REAL_DATASETS) else None


def require_data_dir() -> Path:
    """`data_dir()`, for callers that asked for real-v1 by name: its absence is an error, not an empty suite."""
    directory = data_dir()
    if directory is None:
        raise ShopLoRAError(
            f"the real-data suite needs the datasets folder: set {DATA_ENV}=/path/to/data/real (the folder holding "
            f"{REAL_DATASETS[0].folder}/data.jsonl and the other datasets); looked in {_configured_dir()}"
        )
    return directory


def real_tasks() -> list[Task]:
    """The `real-v1` tasks whose dataset file is present; [] without the data folder. Reads no data file."""
    directory = data_dir()
    if directory is None:
        return []
    return [
        Task(d.spec, d.split, SUITE, partial(_load, d, directory))
        for d in REAL_DATASETS
        if _data_file(directory, d).is_file()
    ]


def _load(dataset: RealDataset, directory: Path, part: str, seed: int) -> list[Example]:
    # `seed` is not used: a real task's parts are fixed rows, so scores compare across runs and seeds; callers
    # that sample shots from the train part do so with their own seed.
    return list(_parts(dataset, directory)[part])


@lru_cache(maxsize=None)
def _parts(dataset: RealDataset, directory: Path) -> dict[str, tuple[Example, ...]]:
    path = _data_file(directory, dataset)
    pairs = []
    for place, row in read_rows(path):
        try:
            example = dataset.to_example(row)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise DataError(
                f"{place}: the row does not have the fields this task reads ({error!r}); "
                f"see {path.parent / 'PROVENANCE.md'} for the expected fields"
            ) from None
        if example is not None:
            pairs.append((SPLIT_TO_PART.get(row["split"]) if row.get("split") else None, example))
    check_labels(dataset.spec, [example for _, example in pairs], str(path))
    parts = split_parts(pairs)
    if not parts["train"] or not parts["test"]:
        raise DataError(
            f"{path}: too few usable rows for {dataset.spec.name} "
            f"({len(parts['train'])} train, {len(parts['test'])} test)"
        )
    return parts


def clinc_out_of_scope(part: str = "test") -> list[str]:
    """CLINC150's out-of-scope requests of a part ("train" also holds "val"): inputs no intent covers, for measuring
    how well abstaining catches them. Needs the real-data folder."""
    path = _data_file(require_data_dir(), REAL_DATASETS_BY_FOLDER["clinc150"])
    return [
        row["text"]
        for _, row in read_rows(path)
        if row["label"] == OUT_OF_SCOPE and SPLIT_TO_PART.get(row["split"]) == part
    ]
