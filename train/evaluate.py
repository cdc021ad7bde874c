"""The evaluation benchmark: does a meta init adapt better and faster than the alternatives, on tasks it never saw?

    shoplora eval configs/eval/quick.yaml [key=value ...]        # the grid: results.json, results.md, PNG plots
    shoplora compare service-intent-petshop --k 16 --inits default,smollm2-135m-multitask,none   # one task, one seed

Methods, all on the same base model, renderer, support sets and test examples: `zero_shot` (the instruction only),
`icl` (the k examples as earlier chat turns), and LoRA adapted from an init: `lora_standard` (PEFT's init),
`lora_multitask` (multi-task SFT over the meta-train tasks), `lora_average` (the average of per-task adapters on those
tasks, built here) and `lora_meta` (Reptile/FOMAML). Each LoRA method runs the inner loop recorded in its init. The
grid is tasks x shots k x seeds (a seed is a support set); every run is saved to results.json as soon as it is
scored, so `resume=true` continues an interrupted grid (or extends it with more seeds, shots, tasks or methods).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
import random
import re
import subprocess
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from adapters import Adapter, AdapterStore, Base, adapt, load_base
from adapters.specs import CALIBRATION, LabelCoverageWarning, examples_digest, needs_calibration, task_spec
from adapters.base import DTYPES, device_name
from adapters.files import LoraFiles, check_name, read_lora_dir, write_lora_dir
from adapters.generation import base_only, generate
from adapters.inits import check_init_exists, resolve_init, trained_base_settings
from adapters.lora import LoraSettings
from adapters.metrics import METRICS, argmax
from adapters.optional import require_sklearn
from adapters.record import InitRecord
from adapters.scoring import label_scores
from adapters.trackers import REPORT_TO, open_tracker
from adapters.training import InnerLoop
from prompts import Example, TaskSpec, load_examples, suite
from prompts.atomic import write_atomic
from prompts.suite import Task

from . import report
from .baselines import plain_lora, tfidf_predictions
from .config import ConfigError, help_field, load_config, require
from .report import Key, cell_key
from .resume import changed_settings

METHODS = ("zero_shot", "icl", "tfidf", "lora_plain", "lora_standard", "lora_multitask", "lora_average", "lora_meta")
BASELINES = ("zero_shot", "icl")  # no training: the base model with the instruction, or with the k examples as shots
PRACTITIONER = ("tfidf", "lora_plain")  # what a user would do without ShopLoRA (train/baselines.py)
RESULTS, REPORT = "results.json", "results.md"
META_INIT = "smollm2-135m-meta"  # the shipped meta-learned init of the embedded model: lora_meta's by default
AVERAGE_DIR = "inits/average"  # output_dir/inits/average: the lora_average init, built once and reused
MIN_USER_TEST = 10  # test examples a user's task must keep beside its largest support set
# Changing these between an interrupted grid and its resume changes no score already in results.json.
# The inits' names too: their weights are compared by hash for every method that has runs.
RESUMABLE_CHANGES = {
    "tasks",
    "suites",
    "methods",
    "shots",
    "seeds",
    "target",
    "save_adapter",
    "output_dir",
    "resume",
    "meta_init",
    "multitask_init",
    "report_to",
}
# Settings added after results were first saved, and what those older runs did, so they resume with it.
SAVED_BEFORE = {"cover_labels": False, "contextual_calibration": "never"}


# ------------------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class UserTask:
    """A user's own task: a JSONL/CSV of examples and what the model should do. `n_test` of its examples (fewer
    for a small file) are held out as the test set; support sets are drawn from the rest."""

    path: str = help_field("JSONL or CSV with input and output columns", "")
    instruction: str = help_field("what the model should do (the system turn)", "")
    labels: tuple[str, ...] = help_field("classify label set; empty = inferred from the file", ())
    kind: str | None = help_field("classify | extract | generate; null = inferred from the file", None)
    name: str | None = help_field("name in the results; null = the file's name", None)

    def __post_init__(self) -> None:
        require(self, bool(self.path), "path", "must name a JSONL or CSV file of examples")
        require(self, bool(self.instruction.strip()), "instruction", "must say what the model should do")


@dataclass(frozen=True)
class SaveAdapter:
    """One adapter of the grid kept in the adapter store (seed 0), to try from Python, the CLI or the UI."""

    name: str = help_field("adapter name in the store", "")
    task: str = help_field("task whose adapter is kept (a task of the grid)", "")
    k: int = help_field("its number of examples (one of shots)", 16)
    method: str = help_field("its method (a LoRA method of the grid)", "lora_meta")
    store: str | None = help_field("adapter store folder; null = $SHOPLORA_STORE or ./adapters_store", None)

    def __post_init__(self) -> None:
        require(self, bool(self.name), "name", "must be set, e.g. petshop-intents")
        require(self, self.method.startswith("lora_"), "method", "must be a LoRA method, e.g. lora_meta")


@dataclass(frozen=True)
class EvalConfig:
    """What `shoplora eval` runs. Field help is in `fields(EvalConfig)[i].metadata["help"]`."""

    base_model: str | None = help_field("hub id or local directory; null = the embedded SmolLM2-135M-Instruct", None)
    dtype: str = help_field(
        "auto (as the inits were meta-trained, else bf16 on a GPU that has it, fp32 otherwise) | "
        "float32 | bfloat16 | float16; 4-bit follows the inits",
        "auto",
    )
    tasks: tuple[str | UserTask, ...] = help_field(
        "task names and/or user tasks {path, instruction, labels, kind, name}; empty = the held-out tasks of suites", ()
    )
    suites: tuple[str, ...] = help_field(
        "suites whose held-out tasks are used when tasks is empty (real-v1 only where its data folder is)",
        ("ecommerce-v1", "real-v1"),
    )
    methods: tuple[str, ...] = help_field(
        f"any of {', '.join(METHODS)}; the last is compared with each other one", METHODS
    )
    shots: tuple[int, ...] = help_field("k: examples each method learns from", (4, 8, 16, 32))
    seeds: int = help_field("support sets per task and k (seeds 0..seeds-1)", 5)
    cover_labels: bool = help_field(
        "classify support sets start with one example of each label (as many as k allows), "
        "the rest at random; false = k examples at random, some labels possibly missing",
        False,
    )
    contextual_calibration: str = help_field(
        "classify labels scored with contextual calibration (adapters.scoring): "
        "auto = when some label has no example among those a method learns from "
        "(as `adapt` does; zero-shot always), always, never",
        "auto",
    )
    n_test: int = help_field("test examples scored per task", 100)
    steps: int | None = help_field(
        "adaptation steps for every LoRA method of adapt; null = as adapt runs them: the "
        "recipe's budget (adapters.recipe), which follows k",
        None,
    )
    curve_k: int = help_field("k at which scores are logged along adaptation (the accuracy-vs-steps curve)", 8)
    curve_steps: tuple[int, ...] = help_field(
        "adaptation steps at which the curve is logged (plus each run's last step)", (0, 1, 2, 4, 8, 16)
    )
    meta_init: str = help_field(
        "init of lora_meta: a shipped name (the FOMAML init smollm2-135m-meta) or a folder", "smollm2-135m-meta"
    )
    multitask_init: str = help_field("init of lora_multitask: a shipped name or a folder", "smollm2-135m-multitask")
    average_steps: int | None = help_field(
        "lora_average: adaptation steps per meta-train task; null = the multitask "
        "init's budget in examples, shared over its tasks",
        None,
    )
    average_examples: int = help_field("lora_average: examples per meta-train task", 32)
    target: float = help_field("score a task should reach: the examples-needed estimate", 0.8)
    save_adapter: SaveAdapter | None = help_field("keep one adapter: {name, task, k, method, store}", None)
    output_dir: str | None = help_field("where results go; null = runs/<config file name>/", None)
    resume: bool = help_field("continue the grid in output_dir/results.json when there is one", False)
    report_to: str = help_field(
        "experiment tracker, as accelerate names it: tensorboard (output_dir/<run name>) | wandb | "
        "mlflow | none: each run's score, under TASK/METHOD/k=K, at step = seed",
        "none",
    )

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, rule: str) -> None:
            require(self, ok, name, rule)

        check(self.report_to in REPORT_TO, "report_to", f"must be one of {' | '.join(REPORT_TO[1:])} | none")
        check(
            bool(self.methods) and set(self.methods) <= set(METHODS) and len(set(self.methods)) == len(self.methods),
            "methods",
            f"must be distinct names from {', '.join(METHODS)}",
        )
        check(
            bool(self.shots) and min(self.shots) >= 1 and len(set(self.shots)) == len(self.shots),
            "shots",
            "must be distinct whole numbers >= 1",
        )
        check(set(self.suites) <= set(suite.SUITES), "suites", f"must name suites of {', '.join(suite.SUITES)}")
        for name in ("seeds", "n_test", "average_examples"):
            check(getattr(self, name) >= 1, name, "must be >= 1")
        check(self.steps is None or self.steps >= 1, "steps", "must be null or >= 1")
        check(self.average_steps is None or self.average_steps >= 1, "average_steps", "must be null or >= 1")
        check(not self.curve_steps or self.curve_k in self.shots, "curve_k", f"must be one of shots {self.shots}")
        check(all(s >= 0 for s in self.curve_steps), "curve_steps", "must be steps >= 0")
        check(0 < self.target < 1, "target", "must be a score between 0 and 1")
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
        check(
            self.contextual_calibration in CALIBRATION,
            "contextual_calibration",
            f"must be one of {', '.join(CALIBRATION)}",
        )
        for name in ("meta_init", "multitask_init"):  # "none" is the standard init: lora_standard's row already
            check(str(getattr(self, name)).lower() != "none", name, "must name an init (none is lora_standard)")
        saving = self.save_adapter
        check(
            saving is None or (saving.method in self.methods and saving.k in self.shots),
            "save_adapter",
            "must name one of methods and one of shots",
        )

    def lora_methods(self) -> list[str]:
        """The methods that adapt from an init with `adapt` (not the baselines a practitioner would use)."""
        return [m for m in self.methods if m not in BASELINES + PRACTITIONER]

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))  # tuples as lists, nested configs as mappings


def load_eval_config(path: str | Path, overrides: Sequence[str] = ()) -> EvalConfig:
    """The evaluation config in YAML file `path` with `key=value` overrides (see train/config.py)."""
    return load_config(path, overrides, EvalConfig)


# ------------------------------------------------------------------------------------------------------ one task
@dataclass
class Result:
    """One method's score on one task after learning from k examples (support set `seed`)."""

    method: str
    score: float  # on the task's metric
    metric: str
    steps: int  # adaptation steps run (0 for zero_shot and icl)
    seconds: float  # wall time of the adaptation (0 for zero_shot and icl: their cost is in score_seconds)
    task: str = ""
    k: int = 0
    seed: int = 0
    score_seconds: float = 0.0  # wall time of scoring the test examples
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (adaptation steps, score); the last: as returned

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        return cls(**{**data, "curve": [tuple(point) for point in data.get("curve", [])]})


def support_set(task: Task, k: int, seed: int, *, cover_labels: bool = False) -> list[Example]:
    """k training examples drawn with `seed` (different seeds: different support sets). `cover_labels` (classify):
    one example of each label first, so that adapting does not learn to never predict a label it saw no example
    of; the labels kept when k is smaller than their number are random too."""
    pool = task.examples("train")
    rng = random.Random(f"support:{seed}:{task.name}")
    if not cover_labels or task.spec.kind != "classify":
        return rng.sample(pool, min(k, len(pool)))
    shuffled = rng.sample(pool, len(pool))
    first: dict[str, Example] = {}
    for example in shuffled:
        first.setdefault(example.output, example)
    leading = list(first.values())
    return (leading + [e for e in shuffled if first[e.output] is not e])[:k]


def score_base(
    base: Base, spec: TaskSpec, test: Sequence[Example], shots: Sequence[Example], *, calibrate: bool = False
) -> float:
    """The base model's score without any adapter, zero-shot or with `shots` in the prompt (`calibrate`: classify
    labels scored with contextual calibration)."""
    gold = [e.output for e in test]
    inputs = [e.input for e in test]
    if spec.kind == "classify":
        with base.lock, base_only(base):
            scores = label_scores(base.model, base.tokenizer, spec, inputs, shots=shots, calibrate=calibrate)
        predicted = [spec.labels[argmax(s)] for s in scores]
    else:
        predicted = generate(base, spec, inputs, shots=shots)
    return METRICS[spec.metric](predicted, gold)


def compare(
    base: Base,
    task: Task,
    *,
    k: int = 16,
    seed: int = 0,
    n_test: int = 50,
    methods: Sequence[str] = ("zero_shot", "icl", "lora_meta", "lora_standard"),
    inits: Mapping[str, str | Path | None] | None = None,
    steps: int | None = None,
    curve_steps: Sequence[int] = (),
    keep: Callable[[str, Adapter], None] | None = None,
    cover_labels: bool = False,
    calibrate: str = "auto",
) -> Iterator[Result]:
    """Score each method on `n_test` test examples of `task` after seeing the same `k` examples (`cover_labels`:
    see support_set; `calibrate`: contextual calibration of classify labels, one of CALIBRATION); yields each
    Result as soon as it is scored. LoRA methods start from `inits[method]` (None: the standard init; by default
    lora_meta is the shipped meta init, META_INIT) and run `steps` steps (None: the recipe's budget), logging the
    score at `curve_steps` on the way; `keep` sees each adapter before it is unloaded (e.g. to save it)."""
    inits = {"lora_meta": META_INIT, "lora_standard": None} if inits is None else inits
    support = support_set(task, k, seed, cover_labels=cover_labels)
    test = task.examples("test")[:n_test]
    metric = task.spec.metric
    for method in methods:
        cell = {"task": task.name, "k": k, "seed": seed}
        if method == "tfidf":
            if task.spec.kind != "classify":
                continue  # a text classifier: no score on extract and generate tasks
            start = time.perf_counter()
            predicted = tfidf_predictions(support, [e.input for e in test], seed)
            score = METRICS[metric](predicted, [e.output for e in test])
            yield Result(method, score, metric, 0, time.perf_counter() - start, metrics={metric: score}, **cell)
            continue
        if method == "lora_plain":
            start = time.perf_counter()
            adapter = plain_lora(base, task.spec, support, seed)
            seconds = time.perf_counter() - start
            yield _scored(method, adapter, test, metric, seconds, cell)
            continue
        if method in BASELINES:
            start = time.perf_counter()
            shots = support if method == "icl" else ()
            score = score_base(
                base, task.spec, test, shots, calibrate=needs_calibration(task.spec, shots, CALIBRATION[calibrate])
            )
            yield Result(
                method,
                score,
                metric,
                0,
                0.0,
                score_seconds=time.perf_counter() - start,
                metrics={metric: score},
                **cell,
            )
            continue
        curve: list[tuple[int, float]] = []
        watched = [0.0]  # seconds spent scoring along the way, not part of the adaptation's wall time
        planned = [math.inf]  # the run's steps (adapt may add some for a pass over k): progress reports them

        def note_planned(step: int, total: int, loss: float) -> None:  # called before watch at each step
            planned[0] = total

        def watch(adapter: Adapter, steps_done: int) -> None:  # the last step is scored once, after adapting
            if steps_done in curve_steps and steps_done < planned[0]:
                tick = time.perf_counter()
                curve.append((steps_done, adapter.evaluate(test)[metric]))
                watched[0] += time.perf_counter() - tick

        start = time.perf_counter()
        with warnings.catch_warnings():  # random support sets lack labels by design (cover_labels is the switch)
            warnings.simplefilter("ignore", LabelCoverageWarning)
            adapter = adapt(
                base,
                support,
                spec=task.spec,
                init=inits[method],
                seed=seed,
                steps=steps,
                progress=note_planned,
                watch=watch if curve_steps else None,
                contextual_calibration=CALIBRATION[calibrate],
            )
        seconds = time.perf_counter() - start - watched[0]
        start = time.perf_counter()
        scores = adapter.evaluate(test)
        score_seconds = time.perf_counter() - start
        steps_run = adapter.record.fit.steps_run
        kept = adapter.record.fit.steps_kept  # early stopping may keep an earlier step's weights
        if curve_steps and all(step != kept for step, _ in curve):
            curve.append((kept, scores[metric]))
        if keep is not None:
            keep(method, adapter)
        adapter.unload()
        yield Result(
            method,
            scores[metric],
            metric,
            steps_run,
            seconds,
            score_seconds=score_seconds,
            metrics={key: value for key, value in scores.items() if key != "n"},
            curve=curve,
            **cell,
        )


def _scored(method: str, adapter: Adapter, test: Sequence[Example], metric: str, seconds: float, cell: dict) -> Result:
    """Score an adapter that is done learning on the test examples, then free it."""
    start = time.perf_counter()
    scores = adapter.evaluate(test)
    score_seconds = time.perf_counter() - start
    steps = adapter.record.fit.steps_run
    adapter.unload()
    return Result(
        method,
        scores[metric],
        metric,
        steps,
        seconds,
        score_seconds=score_seconds,
        metrics={key: value for key, value in scores.items() if key != "n"},
        **cell,
    )


def _quiet(step: int, total: int, loss: float) -> None:
    """Progress callback that shows nothing: the grid has one bar of its own."""


def table(results: Sequence[Result]) -> str:
    lines = [
        "| method | score | metric | adaptation steps | adaptation seconds | scoring seconds |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.method} | {r.score:.3f} | {r.metric} | {r.steps} | {r.seconds:.1f} | {r.score_seconds:.1f} |"
        for r in results
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- the tasks
def user_task(entry: UserTask, *, n_test: int, largest_k: int) -> Task:
    """A user's file as a task: `n_test` examples (fewer for a small file) held out to test, the rest to draw
    support sets from."""
    examples = load_examples(entry.path, labels=entry.labels or None)
    name = entry.name or re.sub(r"[^a-z0-9._-]+", "-", Path(entry.path).stem.lower()).strip("-._") or "user-task"
    spec = replace(task_spec(examples, entry.instruction, entry.labels or None, entry.kind), name=name)
    shuffled = random.Random(f"user-task:{name}").sample(examples, len(examples))
    n_held, least = min(n_test, len(examples) - largest_k), min(n_test, MIN_USER_TEST)
    if n_held < least:
        raise ConfigError(
            f"{entry.path} has {len(examples)} examples: support sets of up to {largest_k} plus at "
            f"least {least} test examples need {largest_k + least}; label more examples or lower shots"
        )
    test, pool = shuffled[:n_held], shuffled[n_held:]
    return Task(spec, "user", "user", lambda part, seed: list(pool if part == "train" else test))


def grid_tasks(config: EvalConfig) -> tuple[list[Task], list[str]]:
    """The tasks to evaluate, and notes on what was left out (a suite whose data is not here)."""
    if config.tasks:
        largest = max(config.shots)
        return [
            user_task(t, n_test=config.n_test, largest_k=largest) if isinstance(t, UserTask) else suite.get_task(t)
            for t in config.tasks
        ], []
    here = suite.available_suites()
    notes = [
        f"suite {name} skipped: its data folder is not here (set SHOPLORA_DATA_DIR)"
        for name in config.suites
        if name not in here
    ]
    return [t for name in config.suites if name in here for t in suite.tasks(name, split="held-out")], notes


def task_digest(task: Task) -> str:
    """A hash of a task's spec and examples: a resumed grid must score the same examples."""
    train, test = task.examples("train"), task.examples("test")
    return hashlib.sha256(f"{task.spec.to_dict()}{examples_digest(train)}{examples_digest(test)}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- lora_average init
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


# ------------------------------------------------------------------------------------------------------ the grid
def init_record(path: Path | None) -> dict:
    """What results.json says about an init: its folder, a hash of its weights, and how it was made."""
    if path is None:
        return {"path": None, "sha256": None, "made": "PEFT's standard LoRA init (A random, B = 0)", "tasks": []}
    record = read_lora_dir(path).record
    if not isinstance(record, InitRecord):  # an adapter folder used as an init: no meta-training to tell
        record = InitRecord(name=record.name)
    how = record.trained_on or f"{len(record.tasks)} meta-train tasks"
    weights = (Path(path) / "adapter_model.safetensors").read_bytes()
    return {
        "path": str(path),
        "sha256": hashlib.sha256(weights).hexdigest(),
        "made": f"{record.algorithm} init {record.name or Path(path).name}: {how}",
        "algorithm": record.algorithm,
        "inner_loop": record.inner_loop.to_dict() if record.inner_loop else None,
        "tasks": record.tasks,
    }


def key_of(result: Result) -> Key:
    return cell_key(result.task, result.method, result.k, result.seed)


class Evaluation:
    """The recipe: `setup()`, `run()`. Every scored run is written to results.json at once (atomically), so an
    interrupted grid loses at most the run in progress."""

    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir or "runs/eval")
        self.results: dict[Key, Result] = {}

    # ---------------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        self._check_output_dir()
        self.tasks, self.notes = grid_tasks(self.config)
        if not self.tasks:
            raise ConfigError("no tasks to evaluate: name tasks, or suites with held-out tasks")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"config field 'tasks' names a task twice: {names}")
        saving = self.config.save_adapter
        if saving is not None:
            check_name(saving.name)
            if saving.task not in names:
                raise ConfigError(f"save_adapter.task {saving.task!r} is not a task of the grid ({', '.join(names)})")
        saved = self._saved()
        if saved is not None:  # settings first: a refused resume must not load the model or rebuild inits
            self._check_settings(saved)
        if "tfidf" in self.config.methods:
            require_sklearn("the tfidf baseline", otherwise=", or leave tfidf out of methods")
        wanted = set(self.config.lora_methods())  # a mistyped init fails before the base model loads
        inits = [
            self.config.meta_init if "lora_meta" in wanted else None,
            self.config.multitask_init if wanted & {"lora_multitask", "lora_average"} else None,
        ]
        for init in inits:
            check_init_exists(init)
        trained = trained_base_settings(inits)  # the base as the inits were trained on it (4-bit, dtype)
        dtype = (trained.get("dtype") or "auto") if self.config.dtype == "auto" else self.config.dtype
        self.base = load_base(self.config.base_model, dtype=dtype, quantization=trained.get("quantization"))
        self.inits = self._resolve_inits()
        self.init_records = {method: init_record(path) for method, path in self.inits.items()}
        seen = {name for record in self.init_records.values() for name in record["tasks"]}
        self.task_records = [
            {
                **t.summary(),
                "metric": t.spec.metric,
                "sha256": task_digest(t),
                "n_test": len(t.examples("test")[: self.config.n_test]),
                "seen_in_meta_training": t.name in seen,
            }
            for t in self.tasks
        ]
        self.started = time.perf_counter()
        self.previous_seconds = 0.0
        self.git, self.resumed = git_state(), []  # the code the grid started with; each resume's code after it
        self.earlier = {"inits": {}, "tasks": []}  # records of runs kept from a resumed grid outside this one
        if saved is not None:
            self._resume(saved)

    def _check_output_dir(self) -> None:
        if (self.output_dir / RESULTS).exists() and not self.config.resume:
            raise ConfigError(
                f"{self.output_dir} already holds results; pass resume=true to continue or extend "
                "that grid, or output_dir=... for a new one"
            )

    def _resolve_inits(self) -> dict[str, Path | None]:
        """Each LoRA method's init folder (None: the standard init); lora_average's is built on first use."""
        config, base = self.config, self.base
        wanted = set(config.lora_methods())
        inits: dict[str, Path | None] = {"lora_standard": None}
        if "lora_meta" in wanted:
            inits["lora_meta"] = resolve_init(config.meta_init, base).path
        if wanted & {"lora_multitask", "lora_average"}:
            multitask = resolve_init(config.multitask_init, base)
            inits["lora_multitask"] = multitask.path
            if "lora_average" in wanted:
                inits["lora_average"] = average_init(
                    base, self.output_dir / AVERAGE_DIR, average_recipe(config, multitask)
                )
        return {method: inits[method] for method in config.lora_methods()}

    def _saved(self) -> dict | None:
        """The results.json of the grid to resume, or None when starting afresh."""
        path = self.output_dir / RESULTS
        if not (self.config.resume and path.exists()):
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot resume from {path}: {error}; move it aside or use another output_dir") from error

    def _check_settings(self, saved: dict) -> None:
        ours = self.config.to_dict()
        self._refuse(list(changed_settings(ours, saved["config"], resumable=RESUMABLE_CHANGES, defaults=SAVED_BEFORE)))

    def _refuse(self, changed: Sequence[str]) -> None:
        if changed:
            raise ConfigError(
                f"{self.output_dir / RESULTS} was made with other settings ({', '.join(changed)}); "
                "resume it with its own settings, or use another output_dir"
            )

    def _resume(self, saved: dict) -> None:
        """Keep the saved runs when everything that decides their scores is unchanged: the base model (weights'
        config and dtype), the inits and the tasks' examples of every method and task that has runs."""
        runs = [Result.from_dict(r) for r in saved["runs"]]
        ours, theirs = self._base_record(), saved["base_model"]
        changed = [
            f"the base model's {field}"
            for field in ("fingerprint", "dtype", "quantization")
            if theirs.get(field, ours[field]) != ours[field]
        ]  # results from before dtype was recorded pass
        inits = saved["inits"]
        changed += [
            f"the {method} init" + ("" if method in inits else " (not recorded)")
            for method, init in self.init_records.items()
            if any(r.method == method for r in runs) and inits.get(method, {}).get("sha256") != init["sha256"]
        ]
        saved_tasks = saved["tasks"] + saved.get("earlier", {}).get("tasks", [])
        digests = {t["name"]: t["sha256"] for t in saved_tasks}
        changed += [
            f"the examples of {t['name']}" + ("" if t["name"] in digests else " (not recorded)")
            for t in self.task_records
            if any(r.task == t["name"] for r in runs) and digests.get(t["name"]) != t["sha256"]
        ]
        self._refuse(changed)
        here = {t["name"] for t in self.task_records}
        self.earlier = {
            "inits": {m: r for m, r in inits.items() if m not in self.init_records},
            "tasks": [t for t in saved_tasks if t["name"] not in here],
        }
        self.results = {key_of(r): r for r in runs}
        self.previous_seconds = saved.get("seconds", 0.0)
        self.resumed = [
            *saved.get("resumed", []),
            {
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "device": device_name(self.base.device),
                **self.git,
            },
        ]
        self.git = saved["git"]

    def _base_record(self) -> dict[str, str]:
        return {
            "id": self.base.model_id,
            "fingerprint": self.base.fingerprint,
            "dtype": str(self.base.model.dtype).removeprefix("torch."),
            "quantization": self.base.quantization,
        }

    # ---------------------------------------------------------------------------------------------- run
    def plan(self) -> list[tuple[Task, int, int, list[str]]]:
        """(task, k, seed, methods) still to run: zero-shot first, then seed by seed, so that every finished seed
        is a full replicate of the grid."""
        config, todo = self.config, []
        cells = [(task, 0, 0, ["zero_shot"]) for task in self.tasks if "zero_shot" in config.methods]
        cells += [
            (task, k, seed, [m for m in config.methods if m != "zero_shot"])
            for seed in range(config.seeds)
            for k in config.shots
            for task in self.tasks
        ]
        for task, k, seed, methods in cells:
            missing = [m for m in methods if cell_key(task.name, m, k, seed) not in self.results]
            if missing:
                todo.append((task, k, seed, missing))
        return todo

    def run(self) -> dict:
        from tqdm.auto import tqdm

        config, todo = self.config, self.plan()
        bar = tqdm(total=sum(len(m) for *_, m in todo), desc="eval", unit="run")
        saving = config.save_adapter
        tracker = open_tracker(config.report_to, self.output_dir.name, self.output_dir, asdict(config))
        for task, k, seed, methods in todo:
            bar.set_postfix_str(f"{task.name} k={k} seed {seed}")
            keep = self._saver() if saving and (saving.task, saving.k, seed) == (task.name, k, 0) else None
            for result in compare(
                self.base,
                task,
                k=k,
                seed=seed,
                n_test=config.n_test,
                methods=methods,
                inits=self.inits,
                steps=config.steps,
                keep=keep,
                cover_labels=config.cover_labels,
                calibrate=config.contextual_calibration,
                curve_steps=config.curve_steps if k == config.curve_k else (),
            ):
                self.results[key_of(result)] = result
                self.write(finished=False)
                if tracker:
                    tracker.log({f"{task.name}/{result.method}/k={k}": result.score}, step=seed)
                bar.update(1)
                bar.write(
                    f"{task.name} k={k} seed {seed} {result.method}: {result.score:.3f} {result.metric} "
                    f"({result.steps} steps, {result.seconds:.1f} s)"
                )
        bar.close()
        if tracker:
            tracker.finish()
        if saving and saving.name not in AdapterStore(self._store_root()).names():
            self._save_again()
        return self.write(finished=True)

    def _store_root(self) -> str:
        return self.config.save_adapter.store or os.environ.get("SHOPLORA_STORE", "adapters_store")

    def _saver(self) -> Callable[[str, Adapter], None]:
        saving = self.config.save_adapter

        def keep(method: str, adapter: Adapter) -> None:
            if method == saving.method:
                AdapterStore(self._store_root()).save(adapter, saving.name, overwrite=True)

        return keep

    def _save_again(self) -> None:
        """The adapter to keep was scored in an earlier, interrupted run: adapt it again (same seed, same weights)."""
        saving = self.config.save_adapter
        task = next(t for t in self.tasks if t.name == saving.task)
        for _ in compare(
            self.base,
            task,
            k=saving.k,
            seed=0,
            n_test=1,
            methods=[saving.method],
            inits=self.inits,
            steps=self.config.steps,
            keep=self._saver(),
            cover_labels=self.config.cover_labels,
            calibrate=self.config.contextual_calibration,
        ):
            pass

    # ---------------------------------------------------------------------------------------------- results
    def write(self, *, finished: bool) -> dict:
        """results.json (every number, config, versions, device, commit); when finished also results.md and the
        plots. Each file is written to a temp file and renamed into place."""
        config = self.config
        runs = sorted(
            self.results.values(),
            key=lambda r: (
                r.seed,
                r.k,
                r.task,
                config.methods.index(r.method) if r.method in config.methods else len(METHODS),
            ),
        )
        results = {
            "schema": 1,
            "status": "complete" if finished else "running",
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(self.previous_seconds + time.perf_counter() - self.started, 1),
            "config": config.to_dict(),
            "versions": versions(),
            "device": device_name(self.base.device),
            "git": self.git,
            "resumed": self.resumed,
            "base_model": self._base_record(),
            "inits": self.init_records,
            "notes": self.notes,
            "tasks": self.task_records,
            "earlier": self.earlier,
            "saved_adapter": (
                {**asdict(config.save_adapter), "store": self._store_root()} if config.save_adapter else None
            ),
            "runs": [{**asdict(r), "curve": [list(p) for p in r.curve]} for r in runs],
        }
        if finished:  # the statistics once, at the end; an unfinished results.json holds the runs so far
            results.update(report.analyse(runs, config, [t.name for t in self.tasks]))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.output_dir / RESULTS, json.dumps(results, indent=1) + "\n")
        if finished:
            write_atomic(self.output_dir / REPORT, report.markdown(results))
            report.plots(results, self.output_dir)
        return results


# ------------------------------------------------------------------------------------------------------ helpers
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("shoplora", "torch", "transformers", "peft", "accelerate"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def git_state() -> dict[str, Any]:
    """The commit the code ran at, and whether the working tree had uncommitted changes."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def run(config: EvalConfig) -> dict:
    """Run (or resume) the grid `config` describes; returns what results.json holds."""
    evaluation = Evaluation(config)
    evaluation.setup()
    return evaluation.run()
