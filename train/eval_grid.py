"""The grid: tasks x shots k x seeds, every method per cell (train/eval_cell.py), each scored run written to
results.json at once, so `resume=true` continues an interrupted grid or extends it; results.md and plots at the end."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from adapters import Adapter, AdapterStore, load_base
from adapters.base import device_name
from adapters.files import check_name
from adapters.init_catalog import check_init_exists, resolve_init, trained_base_settings
from adapters.optional import require_sklearn
from adapters.trackers import open_tracker
from prompts.atomic import write_atomic
from prompts.suite import Task

from . import report
from .config import ConfigError
from .eval_average import average_init, average_recipe
from .eval_cell import Result, score_methods
from .eval_config import METHODS, EvalConfig
from .eval_tasks import grid_tasks, task_digest
from .report import Key, cell_key
from .resume import changed_settings
from .run_info import git_state, init_record, versions

RESULTS, REPORT = "results.json", "results.md"
AVERAGE_DIR = "inits/average"  # output_dir/inits/average: the lora_average init, built once and reused
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
            for result in score_methods(
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
        for _ in score_methods(
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


def run(config: EvalConfig) -> dict:
    """Run (or resume) the grid `config` describes; returns what results.json holds."""
    evaluation = Evaluation(config)
    evaluation.setup()
    return evaluation.run()
