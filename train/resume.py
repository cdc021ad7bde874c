"""What a resume may change: the settings of a run that differ from those it was saved with.

Meta-training (train/meta_trainer.py) and the evaluation grid (train/eval_grid.py) refuse to resume a run with other
settings than those that shaped what it saved, except the ones each names as safe to change.
"""

from __future__ import annotations

from typing import Any, Collection


def changed_settings(
    ours: dict[str, Any], saved: dict[str, Any], *, resumable: Collection[str], defaults: dict[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """The settings of `ours` other than `resumable` whose value differs from `saved` (the run's recorded config),
    by name: (saved value, our value), sorted by name. A setting `saved` lacks was added after the run was saved and
    ran as `defaults` says (None when not there either)."""
    theirs = {key: saved.get(key, defaults.get(key)) for key in ours}
    return {key: (theirs[key], ours[key]) for key in sorted(ours) if key not in resumable and theirs[key] != ours[key]}
