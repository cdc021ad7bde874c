"""The lora_average init: one adapter per meta-train task from the standard init, their LoRA tensors averaged; the
recipe follows the multitask init's tasks and budget so the two compare on equal terms."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path

from adapters import Base, adapt
from adapters.files import LoraFiles, read_lora_dir, write_lora_dir
from adapters.lora import LoraSettings
from adapters.record import InitRecord
from adapters.training import InnerLoop
from prompts import suite

from .config import ConfigError
from .eval_config import EvalConfig
from .eval_tasks import support_set


def average_recipe(config: EvalConfig, multitask: LoraFiles) -> dict:
    """How the lora_average init is made: the multitask init's tasks, and by default its budget in examples."""
    record = multitask.record
    if not isinstance(record, InitRecord):  # an adapter folder: no tasks or budget of its own
        record = InitRecord(name=record.name)
    tasks = record.tasks or [t.name for t in suite.tasks(record.suite or "ecommerce-v1", split="meta-train")]
    loop = record.inner_loop or InnerLoop()
    steps = config.average_steps
    if steps is None:
        trained = record.config or {}
        try:
            seen = (
                trained["outer_steps"]
                * trained["meta_batch_size"]
                * trained["inner_steps"]
                * trained["inner_batch_size"]
            )
        except KeyError:
            raise ConfigError(
                f"the multitask init {multitask.path} does not record its training budget; set average_steps"
            ) from None
        steps = max(1, math.ceil(seen / len(tasks) / InnerLoop().batch_size))
    return {
        "tasks": list(tasks),
        "steps_per_task": steps,
        "examples_per_task": config.average_examples,
        "lr": loop.lr,
        "batch_size": InnerLoop().batch_size,
        "from": "standard LoRA init",
        "seed": 0,
        "adapted_with": loop.to_dict(),
    }


def average_init(base: Base, target: Path, recipe: dict) -> Path:
    """The lora_average init at `target`: one adapter per meta-train task from the standard init, their LoRA
    tensors averaged. Built once; reused while `recipe` and the base model stay the same."""
    if target.exists():
        made = read_lora_dir(target).record
        if isinstance(made, InitRecord) and made.recipe == recipe and made.base_fingerprint == base.fingerprint:
            return target
    from tqdm.auto import tqdm

    started, states = time.perf_counter(), []
    for name in tqdm(recipe["tasks"], desc="lora_average: per-task adapters", unit="task", leave=False):
        task = suite.get_task(name)
        adapter = adapt(
            base,
            support_set(task, recipe["examples_per_task"], recipe["seed"]),
            spec=task.spec,
            init=None,
            steps=recipe["steps_per_task"],
            lr=recipe["lr"],
            seed=recipe["seed"],
            progress=_quiet,
        )
        states.append(adapter.state())
        adapter.unload()
    average = {key: sum(state[key] for state in states) / len(states) for key in states[0]}
    record = InitRecord(
        name="average",
        algorithm="average",
        recipe=recipe,
        tasks=recipe["tasks"],
        inner_loop=InnerLoop.from_dict(recipe["adapted_with"]),
        trained_on=f"the mean of {len(states)} per-task LoRA adapters ({recipe['steps_per_task']} steps on "
        f"{recipe['examples_per_task']} examples each, from the standard init), made by "
        "train.evaluate for lora_average",
        seconds=round(time.perf_counter() - started, 1),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return write_lora_dir(
        target,
        state=average,
        settings=LoraSettings(),
        base_model_id=base.model_id,
        base_fingerprint=base.fingerprint,
        record=record,
        overwrite=True,
    )


def _quiet(step: int, total: int, loss: float) -> None:
    """Progress callback that shows nothing: the grid has one bar of its own."""
