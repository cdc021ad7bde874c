"""Meta-training recipe: a LoRA init learned by Reptile or first-order MAML, or the multi-task SFT baseline.

    accelerate launch -m train.meta configs/embedded.yaml [key=value ...]
    python -m train.meta configs/tiny.yaml base_model=DIR outer_steps=2        # one process, no accelerate launch

Each outer step draws a meta-batch of tasks (train/episodes.py); each process adapts a copy of the init to its own
tasks with the same inner loop adaptation uses (adapters/training.py), never synchronising inside it. The
per-task meta-gradients (Reptile: init - adapted; FOMAML: the query-loss gradient at the adapted weights) are
averaged over all processes, and one outer optimizer step moves the init. `multitask` trains the LoRA directly on
the same episodes' support sets with the same number of examples per step: the baseline a meta init must beat.
Under an FSDP accelerate config the frozen base is sharded over the processes (train/sharding.py); the LoRA tensors,
and so the arithmetic, stay as under DDP.
The result is a PEFT adapter folder `output_dir/init` with `shoplora.json`; `output_dir/checkpoint` resumes a run.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import math
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from adapters.base import device_name, load_base
from adapters.compat import enable_checkpointing
from adapters.files import write_lora_dir
from adapters.inits import check_init_exists, resolve_init
from adapters.lora import add_lora, load_lora_state, lora_parameters
from adapters.scoring import label_loss
from adapters.training import answer_loss, collate, length_batches, make_optimizer, mean_loss, train_steps
from prompts import suite
from prompts.errors import ShopLoRAError, exit_code
from prompts.render import Rendered, answer_ids

from . import checkpoint, sharding
from .checkpoint import Checkpoint, CheckpointError
from .config import ConfigError, MetaConfig, describe_fields, load_config
from .episodes import Episode, EpisodeSampler, validation_episodes, validation_tasks

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
UNSUPPORTED = {"DEEPSPEED", "MEGATRON_LM", "XLA"}  # these need the model handed to them; inner loops must stay local


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier at optimizer step `step`: linear warm-up, then decay to 10%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - 0.9 * progress
    return 1.0


def query_gradient(
    model: Any,
    query: Sequence[Rendered],
    *,
    pad_id: int,
    batch_size: int,
    name: str,
    labels: Sequence[Sequence[int]] | None = None,
) -> tuple[dict[str, Any], float]:
    """FOMAML's meta-gradient: the gradient of the query loss over `query` at adapter `name`'s current (adapted)
    weights, taken in chunks of `batch_size`; and that loss. The loss is the mean answer-token cross-entropy, or,
    given `labels` (a classify episode's labels as answer token ids), the right label's cross-entropy among them
    (`adapters.scoring.label_loss`), averaged over the examples."""
    import torch

    params = lora_parameters(model, name)
    grads = {key: torch.zeros_like(p) for key, p in params.items()}
    device = next(iter(params.values())).device
    tokens = sum(len(r) - r.prompt_length for r in query)

    def weighted_loss(chunk: Sequence[Rendered]) -> Any:
        if labels is None:  # chunks weigh by their answer tokens, so the sum is the mean over all of them
            share = sum(len(r) - r.prompt_length for r in chunk) / tokens
            return answer_loss(model, collate(chunk, pad_id, device)) * share
        return label_loss(model, chunk, labels, pad_id) * len(chunk) / len(query)

    total = 0.0
    for param in params.values():
        param.requires_grad_(True)
    model.train()
    try:
        for start in range(0, len(query), batch_size):
            chunk = query[start : start + batch_size]
            loss = weighted_loss(chunk)
            for key, grad in zip(params, torch.autograd.grad(loss, list(params.values()))):
                grads[key] += grad
            total += loss.item()
    finally:
        for param in params.values():
            param.requires_grad_(False)
        model.eval()
    return grads, total


def _accumulate(total: dict[str, Any], grads: dict[str, Any], weight: float = 1.0) -> None:
    for key in total:
        total[key] += weight * grads[key]


def digest(tensors: dict[str, Any]) -> str:
    """sha256 of the tensors' bytes (sorted by key): equal on two processes exactly when their weights are."""
    import torch

    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class MetaTrainer:
    """The recipe: `setup()`, `train()`, `cleanup()`. `train()` returns the init's folder (None after `stop_after`)."""

    def __init__(self, config: MetaConfig) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir or "runs/meta")

    # ---------------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        self._start_processes()
        self._check_output_dir()
        self._select_tasks()  # a config mistake fails here, before minutes of loading a large model
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
        import torch
        from accelerate import Accelerator

        from adapters.trackers import check_report_to

        # cpu=True without a GPU: processes started by `accelerate launch --multi_gpu` or torchrun then join over
        # gloo (accelerate's own --cpu launcher starts one process unless mpirun is installed).
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(),
            project_dir=str(self.output_dir),
            log_with=check_report_to(self.config.report_to),
        )
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        launched = "LOCAL_WORLD_SIZE" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ
        if self.accelerator.device.type == "cpu" and launched:
            # accelerate launch and torchrun set OMP_NUM_THREADS=1 for every process, even a lone one: give each
            # process on this machine its share of the cores instead.
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
        kind = self.accelerator.distributed_type.name
        if kind in UNSUPPORTED:
            raise ConfigError(f"accelerate's {kind} is not supported: use configs/accelerate/ddp.yaml")
        self.fsdp = sharding.settings(self.config) if sharding.requested() else None
        if self.config.meta_batch_size % self.world:
            raise ConfigError(
                f"config field 'meta_batch_size' ({self.config.meta_batch_size}) must be a multiple "
                f"of the {self.world} processes: each process adapts the same number of tasks"
            )

    def _check_output_dir(self) -> None:
        found = checkpoint.find(self.output_dir)
        if found and not self.config.resume:
            raise ConfigError(
                f"{self.output_dir} already holds a run's checkpoint; pass resume=true to continue it, "
                "or output_dir=... for a new run"
            )
        if not found and (self.output_dir / INIT_DIR).exists():
            raise ConfigError(
                f"{self.output_dir / INIT_DIR} exists without a checkpoint to resume; pass "
                "output_dir=... for a new run, or move that init away"
            )

    def _load_model(self) -> None:
        import torch

        config = self.config
        device, dtype = self.accelerator.device, config.dtype
        if self.fsdp is not None and dtype == "auto" and device.type == "cuda":
            dtype = "bfloat16"  # what auto means on a GPU (adapters.base); the base loads on the CPU first here
        # Under FSDP the whole base passes through CPU memory once; sharding moves only this process's part over.
        self.base = load_base(
            config.base_model,
            dtype=dtype,
            quantization=config.quantization,
            device="cpu" if self.fsdp is not None else str(device),
        )
        if config.gradient_checkpointing:
            enable_checkpointing(self.base.model)
        torch.manual_seed(config.seed)  # the same standard LoRA init on every process
        self.model = add_lora(self.base, ADAPTER, config.lora_settings())
        if config.start_from is not None:
            self._load_start()
        self.passes = None
        if self.fsdp is not None:
            held = sharding.shard_base(self.model, lora_parameters(self.model, ADAPTER).values(), device, self.fsdp)
            print(
                f"process {self.rank} of {self.world}: FSDP holds {held['local_parameters']} of the base's "
                f"{held['base_parameters']} parameters ({held['shard_groups']} shard groups)",
                flush=True,
            )
            self.passes = sharding.PassCounter(self.model)
        self.pad_id = self.base.tokenizer.pad_token_id
        self.inner_loop = config.inner_loop()

    def _load_start(self) -> None:
        """Put the `start_from` init's tensors into the adapter (a resume then replaces them with the checkpoint's)."""
        config = self.config
        files = resolve_init(config.start_from, self.base)
        if files is None:
            return  # "none": the standard init, as null
        ours, theirs = config.lora_settings(), files.settings
        if (theirs.r, theirs.alpha) != (ours.r, ours.alpha):  # the same rank with another alpha loads, wrongly scaled
            raise ConfigError(
                f"start_from {config.start_from!r} has LoRA r={theirs.r}, alpha={theirs.alpha}, but "
                f"this config asks for r={ours.r}, alpha={ours.alpha}; set lora_r and lora_alpha to "
                "the init's"
            )
        load_lora_state(self.model, files.state, ADAPTER)  # refuses other target modules, naming them

    def _select_tasks(self) -> None:
        config = self.config
        tasks = [t for name in config.suites() for t in suite.tasks(name, split="meta-train")]
        by_name = {t.name: t for t in tasks}
        unknown = [name for name in config.tasks if name not in by_name]
        if unknown:
            raise ConfigError(
                f"config field 'tasks' names {unknown}, which are not meta-train tasks of "
                f"{' + '.join(config.suites())}; see `shoplora tasks list --split meta-train`"
            )
        self.tasks = [by_name[name] for name in config.tasks] if config.tasks else tasks
        if config.meta_batch_size > len(self.tasks):
            raise ConfigError(
                f"meta_batch_size {config.meta_batch_size} is more than the {len(self.tasks)} "
                f"meta-train tasks; lower it to at most {len(self.tasks)}"
            )

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
        """The tensors being trained and their optimizer. Meta-learning trains the init, held apart from the adapter
        each inner loop changes, with the outer optimizer; multitask trains the adapter's own parameters with the
        inner-loop optimizer. Warm-up and decay follow the outer steps either way."""
        import torch

        config = self.config
        live = lora_parameters(self.model, ADAPTER)
        if config.algorithm == "multitask":
            self.init = live
            steps_per_outer = config.meta_batch_size // self.world * config.inner_steps
            self.optimizer = make_optimizer(config.inner_optimizer, list(self.init.values()), config.inner_lr)
        else:
            self.init = {key: p.detach().clone() for key, p in live.items()}
            steps_per_outer = 1
            self.optimizer = make_optimizer(config.outer_optimizer, list(self.init.values()), config.outer_lr)
        factor = functools.partial(
            lr_factor,
            warmup=config.warmup_steps * steps_per_outer,
            total=config.outer_steps * steps_per_outer,
            schedule=config.schedule,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self._broadcast_init()

    def _broadcast_init(self) -> None:
        """Every process starts from process 0's init (equal seeds make them equal already; this makes it sure)."""
        if self.world > 1:
            from accelerate.utils import broadcast

            for key, tensor in broadcast(dict(self.init)).items():
                self.init[key].data.copy_(tensor)

    def _resume(self) -> None:
        import torch

        found = checkpoint.find(self.output_dir)
        if found is None:
            log.info("resume: no checkpoint in %s yet; starting from step 0", self.output_dir)
            return
        saved = checkpoint.load(found)
        ours = self.config.to_dict()
        # A field added since the checkpoint was written ran as its default there.
        theirs = {**MetaConfig().to_dict(), **saved.state["config"]}
        changed = sorted(k for k in ours if k not in RESUMABLE_CHANGES and theirs.get(k) != ours[k])
        if changed:
            diffs = ", ".join(f"{k}: {theirs.get(k)!r} there, {ours[k]!r} now" for k in changed)
            raise CheckpointError(
                f"{found} is from a different run ({diffs}); resume it with its own settings, or use another output_dir"
            )
        with torch.no_grad():
            for key, tensor in self.init.items():
                tensor.copy_(saved.tensors[key])
        self.optimizer.load_state_dict(saved.optimizer)
        self.scheduler.load_state_dict(saved.state["scheduler"])
        self.step, self.seconds, self.curves = saved.state["step"], saved.state["seconds"], saved.state["curves"]
        self.resumed_finished = self.step >= self.config.outer_steps
        if self.rank < len(saved.rng):
            rng = saved.rng[self.rank]
            random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state(rng["cuda"])
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
        weight_at_init = self.config.init_query_weight
        for slot, episode in enumerate(episodes):
            load_lora_state(self.model, self.init, ADAPTER)
            query = functools.partial(
                query_gradient,
                self.model,
                episode.query,
                pad_id=self.pad_id,
                batch_size=self.config.inner_batch_size,
                name=ADAPTER,
                labels=self._query_labels(episode),
            )
            tick = time.perf_counter()
            if weight_at_init:
                grads, _ = query()
                _accumulate(meta_gradient, grads, weight_at_init)
            query_seconds += time.perf_counter() - tick
            tick = time.perf_counter()
            train_steps(
                self.model,
                episode.support,
                self.inner_loop,
                pad_id=self.pad_id,
                rng=self._rng("inner", slot),
                name=ADAPTER,
            )
            inner_seconds += time.perf_counter() - tick
            tick = time.perf_counter()
            if self.config.algorithm == "reptile":
                adapted = lora_parameters(self.model, ADAPTER)
                for key in meta_gradient:  # an outer step along -(init - adapted) moves the init toward adapted
                    meta_gradient[key] += self.init[key] - adapted[key].detach()
                query_losses.append(
                    mean_loss(self.model, episode.query, pad_id=self.pad_id, batch_size=self.config.inner_batch_size)
                )
            else:
                grads, loss = query()
                _accumulate(meta_gradient, grads)
                query_losses.append(loss)
            query_seconds += time.perf_counter() - tick
        meta_gradient = self._sum_over_processes(meta_gradient)
        for key, tensor in self.init.items():
            tensor.grad = meta_gradient[key] / self.config.meta_batch_size
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self._mean_over_processes(query_losses), inner_seconds, query_seconds

    def _query_labels(self, episode: Episode) -> list[list[int]] | None:
        """The episode's labels as answer token ids when its query loss is the label loss; None: the answer loss."""
        if self.config.query_loss != "labels" or episode.spec.kind != "classify":
            return None
        return [answer_ids(label, self.base.tokenizer) for label in episode.spec.labels]

    def _multitask_step(self, episodes: list[Episode]) -> tuple[float, float, float]:
        """Plain SFT on the pooled support sets, as many examples as the meta step's inner loops see; gradients are
        averaged over processes every step, as in data-parallel SFT."""
        support = [r for episode in episodes for r in episode.support]
        rng, queue = self._rng("batches", 0), []
        params = list(self.init.values())
        tick = time.perf_counter()
        for param in params:
            param.requires_grad_(True)
        self.model.train()
        try:
            for _ in range(len(episodes) * self.config.inner_steps):
                if not queue:
                    queue = length_batches(support, self.config.inner_batch_size, rng)
                batch = collate([support[i] for i in queue.pop()], self.pad_id, params[0].device)
                answer_loss(self.model, batch).backward()
                if self.world > 1:
                    averaged = self._sum_over_processes({str(i): p.grad for i, p in enumerate(params)})
                    for i, param in enumerate(params):
                        param.grad = averaged[str(i)] / self.world
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
        finally:
            for param in params:
                param.requires_grad_(False)
            self.model.eval()
        inner_seconds, tick = time.perf_counter() - tick, time.perf_counter()
        losses = [
            mean_loss(self.model, e.query, pad_id=self.pad_id, batch_size=self.config.inner_batch_size)
            for e in episodes
        ]
        return self._mean_over_processes(losses), inner_seconds, time.perf_counter() - tick

    def _validate(self, bar: Any = None) -> None:
        """Query loss on the fixed validation episodes before and after the inner loop, from the current init."""
        import torch

        state = {key: t.detach().clone() for key, t in self.init.items()}
        before, after = [], []
        for episode in self.validation + self.spare_validation:
            load_lora_state(self.model, state, ADAPTER)
            before.append(mean_loss(self.model, episode.query, pad_id=self.pad_id))
            train_steps(
                self.model,
                episode.support,
                self.inner_loop,
                pad_id=self.pad_id,
                rng=random.Random(f"{self.config.seed}:validation:{episode.task}"),
                name=ADAPTER,
            )
            after.append(mean_loss(self.model, episode.query, pad_id=self.pad_id))
        load_lora_state(self.model, state, ADAPTER)  # multitask trains the adapter itself: put its weights back
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

    def _sum_over_processes(self, tensors: dict[str, Any]) -> dict[str, Any]:
        """Element-wise sums over all processes, as one flat all-reduce (one message, not one per tensor)."""
        import torch

        if self.world == 1:
            return tensors
        flat = self.accelerator.reduce(torch.cat([t.reshape(-1) for t in tensors.values()]), "sum")
        out, offset = {}, 0
        for key, tensor in tensors.items():
            out[key] = flat[offset : offset + tensor.numel()].view_as(tensor)
            offset += tensor.numel()
        return out

    def _mean_over_processes(self, values: list[float]) -> float:
        import torch

        local = torch.tensor([sum(values), len(values)], dtype=torch.float64, device=self.accelerator.device)
        total, count = self.accelerator.reduce(local, "sum").tolist()
        return total / count

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

    def _rng_state(self) -> dict:
        import torch

        state = {"python": random.getstate(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state()
        return state

    def _save_checkpoint(self) -> None:
        from accelerate.utils import gather_object

        rng = gather_object([self._rng_state()])  # every process's RNG, written by the main one
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
        from accelerate.utils import gather_object

        self.seconds = time.perf_counter() - self.started
        ours = digest(self.init)
        if self.passes is not None:
            print(f"process {self.rank} of {self.world}: {self.passes.passes} forward passes", flush=True)
        if self.world > 1:
            print(f"process {self.rank} of {self.world}: LoRA sha256 {ours}", flush=True)
            if len(set(gather_object([ours]))) > 1:
                raise ShopLoRAError(
                    "the processes ended with different LoRA weights; this is a bug: report it with "
                    "your accelerate config"
                )
        target = self.output_dir / INIT_DIR
        if self.is_main:
            config = self.config
            record = {
                "kind": "init",
                "name": self.output_dir.name,
                "algorithm": config.algorithm,
                "suite": " + ".join(config.suites()),
                "tasks": [t.name for t in self.tasks],
                "inner_loop": self.inner_loop.to_dict(),
                "curves": self.curves,
                "config": config.to_dict(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "device": self._device_name(),
                "processes": self.world,
                "outer_steps": self.step,
                "sharded_base": self.fsdp is not None,
                "seconds": round(self.seconds, 1),
                "sha256": ours,
                "metrics": self._final_validation(),
            }
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


def run(config: MetaConfig) -> Path | None:
    """Meta-train as `config` says; returns the init's folder, or None when `stop_after` stopped the run early."""
    trainer = MetaTrainer(config)
    try:
        trainer.setup()
        return trainer.train()
    finally:
        trainer.cleanup()


def main(argv: list[str] | None = None) -> int:
    """`python -m train.meta CONFIG.yaml [key=value ...]`; also `shoplora meta-train`. Errors are one line, exit 2."""
    parser = argparse.ArgumentParser(
        prog="train.meta",
        description=__doc__,
        epilog="config fields:\n" + describe_fields(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="YAML config (configs/*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config fields to override")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return exit_code(lambda: run(load_config(args.config, args.overrides)))


if __name__ == "__main__":
    sys.exit(main())
