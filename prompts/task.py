"""A registered task: its spec, where it belongs, and how its examples are loaded and exported."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .atomic import replace_dir, staging_dir
from .errors import ShopLoRAError
from .spec import Example, TaskSpec

PARTS = ("train", "test")


@dataclass(frozen=True)
class Task:
    """A registered task: what it is (`spec`), where it belongs (`split`, `suite`) and how to get its examples."""

    spec: TaskSpec
    split: str  # "meta-train" or "held-out"
    suite: str
    load: Callable[[str, int], list[Example]]  # (part, seed) -> examples

    @property
    def name(self) -> str:
        return self.spec.name

    def examples(self, part: str = "train", seed: int = 0) -> list[Example]:
        """The `part` ("train" or "test") examples; generated suites give the same examples for the same seed."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        return self.load(part, seed)

    def export(self, folder: Path, *, seed: int = 0, overwrite: bool = False, datasets: bool = False) -> Path:
        """Write `folder/<name>/` with task.json and the train/test examples as JSONL (atomically: an interrupted
        export leaves the old folder or nothing); `datasets=True` adds `dataset/`, a `datasets.DatasetDict` with
        the same rows (`datasets.load_from_disk`)."""
        target = folder / self.name
        if target.exists() and not overwrite:
            raise ShopLoRAError(f"{target} already exists; pass --overwrite to replace it")
        with staging_dir(target) as staging:
            (staging / "task.json").write_text(json.dumps(self.describe(), indent=2) + "\n")
            for part in PARTS:
                lines = (json.dumps(e.to_dict(), ensure_ascii=False) for e in self.examples(part, seed=seed))
                (staging / f"{part}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            if datasets:
                from datasets import Dataset, DatasetDict

                DatasetDict(
                    {part: Dataset.from_list([e.to_dict() for e in self.examples(part, seed=seed)]) for part in PARTS}
                ).save_to_disk(str(staging / "dataset"))
            replace_dir(staging, target)
        return target

    def describe(self) -> dict:
        """`summary()` plus the full spec (what `tasks show` prints and `tasks export` writes)."""
        return {**self.summary(), "spec": self.spec.to_dict()}

    def summary(self) -> dict:
        return {
            "name": self.name,
            "suite": self.suite,
            "family": self.spec.family,
            "kind": self.spec.kind,
            "n_labels": len(self.spec.labels),
            "split": self.split,
        }
