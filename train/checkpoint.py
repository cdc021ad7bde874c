"""Resumable meta-training state in `output_dir/checkpoint/`, written atomically, without pickles.

Tensors (the LoRA init, the outer optimizer's moments, torch RNG states) go to safetensors; everything else (step,
scheduler, curves, Python RNG states) to JSON. A checkpoint is written into a temp folder and renamed into place;
the previous one is moved aside first and deleted last, so a run killed at any moment (even `kill -9`) leaves
either the new or the previous checkpoint complete.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

from prompts.atomic import staging_dir
from prompts.errors import ShopLoRAError

from .config import ConfigError
from .resume import changed_settings

NAME = "checkpoint"
PREVIOUS = ".checkpoint.previous"  # the last complete checkpoint while a new one is being moved into place
TENSORS, OPTIMIZER, OPTIMIZER_STATE, RNG, STATE = (
    "lora.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "rng.safetensors",
    "trainer_state.json",
)


class CheckpointError(ShopLoRAError):
    """A checkpoint that cannot be read, or that belongs to another run."""


@dataclass
class Checkpoint:
    tensors: dict[str, Any]  # the LoRA tensors being trained (the init), PEFT file keys
    optimizer: dict  # torch optimizer state_dict
    rng: list[dict]  # per process: {"python": ..., "torch": ByteTensor, "cuda": ByteTensor | absent}
    state: dict  # step, scheduler, curves, config, seconds


def find(output_dir: Path) -> Path | None:
    """The checkpoint folder to resume from, if a complete one exists."""
    for name in (NAME, PREVIOUS):  # PREVIOUS alone means a run died between the two renames of `save`
        if (output_dir / name / STATE).is_file():
            return output_dir / name
    return None


def check_output_dir(output_dir: Path, *, resume: bool, init: Path) -> None:
    """A ConfigError unless `output_dir` suits the run: a checkpoint there only with `resume`, and no finished `init`
    folder without a checkpoint (a new run would overwrite it)."""
    found = find(output_dir)
    if found and not resume:
        raise ConfigError(
            f"{output_dir} already holds a run's checkpoint; pass resume=true to continue it, "
            "or output_dir=... for a new run"
        )
    if not found and init.exists():
        raise ConfigError(
            f"{init} exists without a checkpoint to resume; pass output_dir=... for a new run, or move that init away"
        )


def save(output_dir: Path, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` as output_dir/checkpoint, atomically."""
    from safetensors.torch import save_file

    with staging_dir(output_dir / NAME) as staging:
        save_file({k: t.detach().cpu().contiguous() for k, t in checkpoint.tensors.items()}, staging / TENSORS)
        moments, rest = _split_optimizer(checkpoint.optimizer)
        save_file(moments, staging / OPTIMIZER)
        (staging / OPTIMIZER_STATE).write_text(json.dumps(rest))
        rng_tensors = {
            f"{kind}.{rank}": state[kind]
            for rank, state in enumerate(checkpoint.rng)
            for kind in ("torch", "cuda")
            if kind in state
        }
        save_file(rng_tensors, staging / RNG)
        python_rng = [state["python"] for state in checkpoint.rng]
        # The state file goes last: `find` treats a folder without it as incomplete.
        (staging / STATE).write_text(json.dumps({**checkpoint.state, "python_rng": python_rng}, indent=1))
        target, previous = output_dir / NAME, output_dir / PREVIOUS
        if target.exists():  # a complete checkpoint: the older PREVIOUS can go. Without one, PREVIOUS may be the
            shutil.rmtree(previous, ignore_errors=True)  # only complete checkpoint left, kept until `target` is in
            os.replace(target, previous)
        os.replace(staging, target)
        shutil.rmtree(previous, ignore_errors=True)
    return output_dir / NAME


def load(folder: Path) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / STATE).read_text())
        tensors = load_file(folder / TENSORS)
        optimizer = _join_optimizer(load_file(folder / OPTIMIZER), json.loads((folder / OPTIMIZER_STATE).read_text()))
        rng_tensors = load_file(folder / RNG)
        rng = [
            {
                "python": python,
                **{
                    kind: rng_tensors[f"{kind}.{rank}"] for kind in ("torch", "cuda") if f"{kind}.{rank}" in rng_tensors
                },
            }
            for rank, python in enumerate(state.pop("python_rng"))
        ]
    except (OSError, ValueError, KeyError, SafetensorError) as error:  # KeyError: an older or edited checkpoint
        raise CheckpointError(
            f"the checkpoint in {folder} cannot be read ({error!r}); delete it to start over, or "
            "set resume=false with another output_dir"
        ) from None
    return Checkpoint(tensors, optimizer, rng, state)


def rng_state() -> dict:
    """This process's random states (Python, torch, CUDA when there is one), as `Checkpoint.rng` holds them."""
    import torch

    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict) -> None:
    """Put back random states that `rng_state` took (read back from a checkpoint: Python's as JSON lists)."""
    import torch

    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def load_same_run(folder: Path, config: dict, *, resumable: Collection[str], defaults: dict) -> Checkpoint:
    """The checkpoint in `folder`, refused when it was saved with other settings than `config` (a run config's
    `to_dict()`) beyond `resumable`; a setting the saved config lacks ran as `defaults` says."""
    saved = load(folder)
    changed = changed_settings(config, saved.state["config"], resumable=resumable, defaults=defaults)
    if changed:
        diffs = ", ".join(f"{k}: {theirs!r} there, {ours!r} now" for k, (theirs, ours) in changed.items())
        raise CheckpointError(
            f"{folder} is from a different run ({diffs}); resume it with its own settings, or use another output_dir"
        )
    return saved


def _split_optimizer(state_dict: dict) -> tuple[dict[str, Any], dict]:
    """An optimizer state_dict as (tensors for safetensors, everything else for JSON)."""
    import torch

    moments, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                moments[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return moments, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _join_optimizer(moments: dict[str, Any], rest: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in [*moments.items(), *rest["scalars"].items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [
        {**group, "betas": tuple(group["betas"])} if "betas" in group else group for group in rest["param_groups"]
    ]
    return {"state": state, "param_groups": groups}
