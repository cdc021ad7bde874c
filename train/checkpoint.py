"""Resumable meta-training state in `output_dir/checkpoint/`, written atomically, without pickles.

Tensors (the LoRA init, the outer optimizer's moments, torch RNG states) go to safetensors; everything else (step,
scheduler, curves, Python RNG states) to JSON. A checkpoint is written into a temp folder and renamed into place;
the previous one is moved aside first and deleted last, so a run killed at any moment (even `kill -9`) leaves
either the new or the previous checkpoint complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompts.atomic import staging_dir
from prompts.errors import ShopLoRAError

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
