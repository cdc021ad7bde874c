"""What `shoplora eval` runs: `EvalConfig` (the grid's methods, tasks, shots, seeds, inits) and its YAML loading;
`UserTask` (a user's own file as a task) and `SaveAdapter` (one adapter of the grid kept in the store)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from adapters.base import DTYPES
from adapters.specs import CALIBRATION
from adapters.trackers import REPORT_TO
from prompts import suite

from .config import help_field, load_config, require

METHODS = ("zero_shot", "icl", "tfidf", "lora_plain", "lora_standard", "lora_multitask", "lora_average", "lora_meta")
BASELINES = ("zero_shot", "icl")  # no training: the base model with the instruction, or with the k examples as shots
PRACTITIONER = ("tfidf", "lora_plain")  # what a user would do without ShopLoRA (train/baselines.py)
META_INIT = "smollm2-135m-meta"  # the shipped meta-learned init of the embedded model: lora_meta's by default


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
