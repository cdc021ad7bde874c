"""The meta-training recipe, `MetaTrainer`: `setup()`, `train()`, `cleanup()`, read top to bottom.

Setup starts the processes (train/processes.py), picks the tasks, loads the base with its working LoRA adapter
(sharded under FSDP: train/sharding.py), builds the episodes (train/episodes.py) and the optimizer, and resumes from
`output_dir/checkpoint` when asked (train/checkpoint.py). Each outer step runs train/outer_steps.py on this process's
episodes and averages over processes; the result is written as the PEFT folder `output_dir/init` with `shoplora.json`.
The entry point is train/meta.py.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from adapters.base import device_name
from adapters.files import write_lora_dir
from adapters.init_catalog import check_init_exists
from adapters.lora import lora_parameters
from adapters.record import InitRecord
from adapters.training import mean_loss
from prompts.errors import ShopLoRAError
from prompts.render import answer_ids

from . import checkpoint, processes, sharding
from .checkpoint import Checkpoint
from .config import ConfigError, MetaConfig
from .episodes import Episode, EpisodeSampler, meta_train_tasks, validation_episodes, validation_tasks
from .meta_model import load_model
from .outer_steps import add_meta_gradient, multitask_steps, trained_tensors, validation_losses

log = logging.getLogger(__name__)

ADAPTER = "meta-train"  # the working adapter each inner loop trains; the init itself is held apart as tensors
INIT_DIR = "init"  # output_dir/init: the PEFT folder this recipe produces
# Changing these between an interrupted run and its resume does not change the weights it trains.
RESUMABLE_CHANGES = {
    "resume",
    "stop_after",
    "save_every",
    "validate_every",
    "validation_tasks",
    "validation_query",
    "output_dir",
}


class MetaTrainer:
    """The recipe: `setup()`, `train()`, `cleanup()`. `train()` returns the init's folder (None after `stop_after`)."""

    def __init__(self, config: MetaConfig) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir or "runs/meta")

    # ---------------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        self._start_processes()
        checkpoint.check_output_dir(self.output_dir, resume=self.config.resume, init=self.output_dir / INIT_DIR)
        self.tasks = meta_train_tasks(self.config)  # a config mistake fails here, before minutes of loading a model
        check_init_exists(self.config.start_from)
        self._load_model()
        self._make_episodes()
        self._make_optimizer()
        self.step, self.seconds, self.resumed_finished = 0, 0.0, False
        self.curves: dict[str, dict[str, list]] = {
            "train": {"step": [], "query_loss": [], "seconds": [], "inner_seconds": [], "query_seconds": []},
            "validation": {"step": [], "loss_before": [], "loss_after": []},
        }
        if self.config.resume:
            self._resume()
        if self.accelerator.log_with:
            scalars = {k: v for k, v in self.config.to_dict().items() if isinstance(v, (bool, int, float, str))}
            self.accelerator.init_trackers(self.output_dir.name, config=scalars)  # TensorBoard takes scalars only

    def _start_processes(self) -> None:
        self.accelerator = processes.start(self.output_dir, self.config.report_to)
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.fsdp = sharding.settings(self.config) if sharding.requested() else None
        if self.config.meta_batch_size % self.world:
            raise ConfigError(
                f"config field 'meta_batch_size' ({self.config.meta_batch_size}) must be a multiple "
                f"of the {self.world} processes: each process adapts the same number of tasks"
            )

    def _load_model(self) -> None:
        device = self.accelerator.device
        self.base, self.model, self.passes = load_model(self.config, ADAPTER, device, self.fsdp, self.rank, self.world)
        self.pad_id = self.base.tokenizer.pad_token_id
        self.inner_loop = self.config.inner_loop()

    def _make_episodes(self) -> None:
        config = self.config
        self.sampler = EpisodeSampler(
            self.tasks,
            self.base.tokenizer,
            meta_batch_size=config.meta_batch_size,
            support_k=config.support_k,
            query_k=config.query_k,
            label_subsets=config.label_subsets,
            max_length=config.max_length,
            seed=config.seed,
            label_renaming=config.label_renaming,
        )
        # Validation tasks are split over the processes, like the meta-batch; their losses are averaged.
        tasks = validation_tasks(self.tasks, config.validation_tasks)
        episodes = functools.partial(
            validation_episodes,
            tokenizer=self.base.tokenizer,
            k=sum(config.support_k) // 2,
            n_query=config.validation_query,
            max_length=config.max_length,
        )
        self.validation = episodes(tasks[self.rank :: self.world])
        # Under FSDP every process must make as many passes as the others: one with fewer validation tasks than
        # the most any process has validates the first task again as often as it is short, and drops those losses.
        short = -(-len(tasks) // self.world) - len(self.validation) if self.fsdp is not None else 0
        self.spare_validation = episodes(tasks[:1]) * short if short > 0 else []

    def _make_optimizer(self) -> None:
        live = lora_parameters(self.model, ADAPTER)
        self.init, self.optimizer, self.scheduler = trained_tensors(self.config, live, self.world)
        processes.broadcast_from_first(self.accelerator, self.init)  # equal seeds made them equal: now surely

    def _resume(self) -> None:
        import torch

        defaults = MetaConfig().to_dict()  # a field added since the checkpoint was written ran as its default there
        found = checkpoint.find(self.output_dir)
        if found is None:
            log.info("resume: no checkpoint in %s yet; starting from step 0", self.output_dir)
            return
        saved = checkpoint.load_same_run(found, self.config.to_dict(), resumable=RESUMABLE_CHANGES, defaults=defaults)
        with torch.no_grad():
            for key, tensor in self.init.items():
                tensor.copy_(saved.tensors[key])
        self.optimizer.load_state_dict(saved.optimizer)
        self.scheduler.load_state_dict(saved.state["scheduler"])
        self.step, self.seconds, self.curves = saved.state["step"], saved.state["seconds"], saved.state["curves"]
        self.resumed_finished = self.step >= self.config.outer_steps
        if self.rank < len(saved.rng):
            checkpoint.restore_rng(saved.rng[self.rank])
        log.info("resumed %s at outer step %d of %d", found, self.step, self.config.outer_steps)

    # ---------------------------------------------------------------------------------------------- train
    def train(self) -> Path | None:
        from tqdm.auto import tqdm

        config = self.config
        bar = tqdm(
            total=config.outer_steps, initial=self.step, desc=config.algorithm, unit="step", disable=not self.is_main
        )
        self.started = time.perf_counter() - self.seconds  # seconds count over resumed runs too
        if self.step == 0:
            self._validate()  # the standard LoRA init: the reference every later validation is compared with
        while self.step < config.outer_steps:
            tick = time.perf_counter()
            episodes = self.sampler.sample(self.step, self.rank, self.world)
            outer_step = self._multitask_step if config.algorithm == "multitask" else self._meta_step
            query_loss, inner_seconds, query_seconds = outer_step(episodes)
            self.step += 1
            self._check_passes()
            # seconds - inner_seconds - query_seconds is the outer step's own overhead
            self._record(
                "train",
                query_loss=query_loss,
                seconds=time.perf_counter() - tick,
                inner_seconds=inner_seconds,
                query_seconds=query_seconds,
            )
            bar.update(1)
            bar.set_postfix(query_loss=f"{query_loss:.3f}")
            if config.validate_every and self.step % config.validate_every == 0 and self.step < config.outer_steps:
                self._validate(bar)
            if self.step == config.stop_after and self.step < config.outer_steps:
                self._save_checkpoint()
                bar.close()
                self._say(f"stopped after outer step {self.step} as asked (stop_after); continue with resume=true")
                return None
            if config.save_every and self.step % config.save_every == 0 and self.step < config.outer_steps:
                self._save_checkpoint()
        bar.close()
        if self.curves["validation"]["step"][-1:] != [self.step]:
            self._validate()
        if not self.resumed_finished:
            self._save_checkpoint()
        return self._write_init()

    def _check_passes(self) -> None:
        if self.passes is not None:
            self.passes.check(self.accelerator, self.step)

    def _meta_step(self, episodes: list[Episode]) -> tuple[float, float, float]:
        """Adapt the init to each of this process's episodes; average the meta-gradients everywhere; step.
        Returns the mean query loss after adaptation, and the seconds spent in inner loops and on query sets."""
        import torch

        meta_gradient = {key: torch.zeros_like(t) for key, t in self.init.items()}
        query_losses, inner_seconds, query_seconds = [], 0.0, 0.0
        for slot, episode in enumerate(episodes):
            loss, inner, query = add_meta_gradient(
                meta_gradient,
                self.model,
                self.init,
                episode,
                algorithm=self.config.algorithm,
                inner_loop=self.inner_loop,
                pad_id=self.pad_id,
                rng=self._rng("inner", slot),
                name=ADAPTER,
                labels=self._query_labels(episode),
                init_query_weight=self.config.init_query_weight,
            )
            query_losses.append(loss)
            inner_seconds, query_seconds = inner_seconds + inner, query_seconds + query
        meta_gradient = processes.sum_over_processes(self.accelerator, meta_gradient)
        for key, tensor in self.init.items():
            tensor.grad = meta_gradient[key] / self.config.meta_batch_size
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return processes.mean_over_processes(self.accelerator, query_losses), inner_seconds, query_seconds

    def _query_labels(self, episode: Episode) -> list[list[int]] | None:
        """The episode's labels as answer token ids when its query loss is the label loss; None: the answer loss."""
        if self.config.query_loss != "labels" or episode.spec.kind != "classify":
            return None
        return [answer_ids(label, self.base.tokenizer) for label in episode.spec.labels]

    def _multitask_step(self, episodes: list[Episode]) -> tuple[float, float, float]:
        """Plain SFT on the pooled support sets, as many examples as the meta step's inner loops see; gradients are
        averaged over processes every step, as in data-parallel SFT."""
        tick = time.perf_counter()
        multitask_steps(
            self.model,
            list(self.init.values()),
            [r for episode in episodes for r in episode.support],
            len(episodes) * self.config.inner_steps,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            batch_size=self.config.inner_batch_size,
            pad_id=self.pad_id,
            rng=self._rng("batches", 0),
            average=self._average_gradients if self.world > 1 else None,
        )
        inner_seconds, tick = time.perf_counter() - tick, time.perf_counter()
        losses = [
            mean_loss(self.model, e.query, pad_id=self.pad_id, batch_size=self.config.inner_batch_size)
            for e in episodes
        ]
        return processes.mean_over_processes(self.accelerator, losses), inner_seconds, time.perf_counter() - tick

    def _validate(self, bar: Any = None) -> None:
        """Query loss on the fixed validation episodes before and after the inner loop, from the current init."""
        import torch

        state = {key: t.detach().clone() for key, t in self.init.items()}
        before, after = validation_losses(
            self.model,
            state,
            self.validation + self.spare_validation,
            inner_loop=self.inner_loop,
            pad_id=self.pad_id,
            seed=self.config.seed,
            name=ADAPTER,
        )
        before, after = before[: len(self.validation)], after[: len(self.validation)]  # spare episodes do not count
        self._check_passes()
        totals = self.accelerator.reduce(
            torch.tensor([sum(before), sum(after), len(before)], dtype=torch.float64, device=self.accelerator.device),
            "sum",
        ).tolist()
        if totals[2]:
            loss_before, loss_after = totals[0] / totals[2], totals[1] / totals[2]
            self._record("validation", loss_before=loss_before, loss_after=loss_after)
            self._say(
                f"outer step {self.step}: validation query loss {loss_before:.3f} before adapting, "
                f"{loss_after:.3f} after {self.config.inner_steps} inner steps",
                bar,
            )

    # ---------------------------------------------------------------------------------------------- helpers
    def _rng(self, purpose: str, slot: int) -> random.Random:
        # Keyed by the episode's place in the whole meta-batch, not by process, so the number of processes does
        # not change which batches an episode sees.
        return random.Random(f"{self.config.seed}:{purpose}:{self.step}:{self.rank + slot * self.world}")

    def _average_gradients(self, grads: dict[str, Any]) -> dict[str, Any]:
        return {key: grad / self.world for key, grad in processes.sum_over_processes(self.accelerator, grads).items()}

    def _record(self, curve: str, **values: float) -> None:
        self.curves[curve]["step"].append(self.step)
        for key, value in values.items():
            self.curves[curve][key].append(round(value, 5))
        if self.accelerator.log_with:
            self.accelerator.log({f"{curve}/{key}": value for key, value in values.items()}, step=self.step)

    def _say(self, message: str, bar: Any = None) -> None:
        if self.is_main:
            from tqdm.auto import tqdm

            (bar.write if bar is not None else tqdm.write)(message)

    def _save_checkpoint(self) -> None:
        from accelerate.utils import gather_object

        rng = gather_object([checkpoint.rng_state()])  # every process's RNG, written by the main one
        self.seconds = time.perf_counter() - self.started
        if self.is_main:
            state = {
                "step": self.step,
                "scheduler": self.scheduler.state_dict(),
                "curves": self.curves,
                "config": self.config.to_dict(),
                "seconds": self.seconds,
                "processes": self.world,
            }
            checkpoint.save(self.output_dir, Checkpoint(self.init, self.optimizer.state_dict(), rng, state))
        self.accelerator.wait_for_everyone()

    def _write_init(self) -> Path:
        """The init as a PEFT folder with its record; checks first that every process holds the same weights."""
        self.seconds = time.perf_counter() - self.started
        ours = processes.digest(self.init)
        if self.passes is not None:
            print(f"process {self.rank} of {self.world}: {self.passes.passes} forward passes", flush=True)
        if self.world > 1:
            print(f"process {self.rank} of {self.world}: LoRA sha256 {ours}", flush=True)
            if not processes.same_everywhere(ours):
                raise ShopLoRAError(
                    "the processes ended with different LoRA weights; this is a bug: report it with "
                    "your accelerate config"
                )
        target = self.output_dir / INIT_DIR
        if self.is_main:
            config = self.config
            record = InitRecord(
                name=self.output_dir.name,
                algorithm=config.algorithm,
                suite=" + ".join(config.suites()),
                tasks=[t.name for t in self.tasks],
                inner_loop=self.inner_loop,
                curves=self.curves,
                config=config.to_dict(),
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                device=self._device_name(),
                processes=self.world,
                outer_steps=self.step,
                sharded_base=self.fsdp is not None,
                seconds=round(self.seconds, 1),
                sha256=ours,
                metrics=self._final_validation(),
            )
            write_lora_dir(
                target,
                state=self.init,
                settings=config.lora_settings(),
                base_model_id=self.base.model_id,
                base_fingerprint=self.base.fingerprint,
                record=record,
                overwrite=self.resumed_finished,
            )
            self._say(f"wrote the {config.algorithm} init to {target} ({self.seconds / 60:.1f} min)")
        self.accelerator.wait_for_everyone()
        return target

    def _final_validation(self) -> dict:
        """The last validation: mean query loss of the validation tasks before and after the inner loop."""
        curve = self.curves["validation"]
        if not curve["step"]:
            return {}
        return {
            "validation_loss_before": curve["loss_before"][-1],
            "validation_loss_after": curve["loss_after"][-1],
            "validation_loss_after_at_step_0": curve["loss_after"][0],
        }

    def _device_name(self) -> str:
        name = device_name(self.accelerator.device)
        return f"{self.world} x {name}" if self.world > 1 else name

    # ---------------------------------------------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        """Close trackers and the process group (when there is one), and free the model."""
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None:
            accelerator.end_training()
        self.model = self.base = None
