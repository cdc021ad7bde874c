"""What an adapter folder's `shoplora.json` holds, typed: `AdapterRecord` (a task learned by `adapt` and `update`),
`InitRecord` (a LoRA init made by meta-training) and the `FitReport` of each fit.

`record_from_json` and `to_json()` read and write the JSON ShopLoRA has always written, key for key, so folders saved
before and the shipped inits load. Keys this version does not know are kept in `extra` and written back. A config a
person types rejects unknown keys (a typo must not pass unnoticed); a record is written by a program, and refusing a
newer ShopLoRA's key, or a note added by hand (as the shipped inits' `trained_on` once was), would make an adapter
unloadable for a fact prediction does not need, and dropping it would lose it at the next save.

The parts of an adapter's record (`FitReport`, `Update`, `Scenario`, `ReplayRow`) are in adapters.record_parts and the
type-checked field reading in adapters.record_fields; import them from here (`from adapters.record import Update`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from prompts import TaskSpec

from .recipe import Recipe
from .record_fields import FIX, FieldReader, RecordError, put
from .record_parts import FitReport, ReplayRow, Scenario, Update
from .training import InnerLoop


@dataclass(kw_only=True)
class Record:
    """What every saved adapter folder's record holds, adapter or init (the folder facts are set by the save)."""

    kind: ClassVar[str]
    name: str | None = None
    created: str | None = None  # when it was made (ISO 8601)
    seconds: float | None = None  # how long making it took
    base_model: str | None = None  # the base model's id or path
    base_fingerprint: str | None = None  # the base's architecture hash: loading on another base is refused
    lora: dict[str, Any] | None = None  # rank, alpha, dropout and target modules, as saved
    compatibility: list[str] = field(default_factory=list)  # what would stop vLLM / LoRAX from loading it
    weights_sha256: dict[str, str] = field(default_factory=dict)  # weights file -> SHA-256, checked at load
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, written back as read

    @property
    def saved(self) -> bool:
        return self.lora is not None

    def _read_folder_facts(self, fields: FieldReader) -> None:
        self.name = fields.take("name", str, None)
        self.created = fields.take("created", str, None)
        self.seconds = fields.take("seconds", float, None)
        self.base_model = fields.take("base_model", str, None)
        self.base_fingerprint = fields.take("base_fingerprint", str, None)
        self.lora = fields.take("lora", dict, None)
        self.compatibility = fields.list_of("compatibility", str)
        self.weights_sha256 = fields.take("weights_sha256", dict, {})

    def _folder_facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        put(out, "seconds", self.seconds)
        put(out, "created", self.created)
        put(out, "name", self.name)
        put(out, "base_model", self.base_model)
        if self.saved:  # a saved record always says which base it was made on, null when unknown
            out.update(base_fingerprint=self.base_fingerprint, lora=self.lora, compatibility=self.compatibility)
        if self.weights_sha256:
            out["weights_sha256"] = self.weights_sha256
        return out


@dataclass(kw_only=True)
class AdapterRecord(Record):
    """An adapter's record: its task and scenarios, where it started, what it learned from, how each fit went, and
    the replay buffer `update` draws on. Example: `adapter.record.fit.steps_run`, `adapter.record.metrics`."""

    kind: ClassVar[str] = "adapter"
    spec: TaskSpec  # the current scenario's task
    init: str | None = None  # the init it was adapted from ("standard": PEFT's)
    recipe: Recipe | None = None  # the adaptation budget
    n_examples: int = 0  # examples learned, over adapt and every update
    examples_sha256: str | None = None  # hash of adapt's examples
    seed: int | None = None
    contextual_calibration: bool = False  # label scores divide out the labels' prior (adapters.scoring)
    warnings: list[str] = field(default_factory=list)  # adapt's: label coverage and its fit's
    # adapt's fit (None: not fitted). Its metrics are on disk until an update's replace them (files keep only the
    # latest at the top level): an adapter read back after an update has {} there, and temperature None.
    fit: FitReport | None = None
    temperature: float = 1.0  # the current scenario's
    examples_needed: dict[str, Any] | None = None  # adapt's learning-curve estimate, when asked for
    replay: list[ReplayRow] = field(default_factory=list)
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    updates: list[Update] = field(default_factory=list)

    @property
    def latest_fit(self) -> FitReport | None:
        """The last fit: the last update's, else adapt's."""
        return self.updates[-1].fit if self.updates else self.fit

    @property
    def metrics(self) -> dict[str, Any]:
        """The held-out metrics of the latest fit."""
        latest = self.latest_fit
        return latest.metrics if latest is not None else {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "spec": self.spec.to_dict()}
        put(out, "init", self.init)
        put(out, "recipe", self.recipe.to_dict() if self.recipe else None)
        out["n_examples"] = self.n_examples
        put(out, "examples_sha256", self.examples_sha256)
        put(out, "seed", self.seed)
        out.update(contextual_calibration=self.contextual_calibration, warnings=list(self.warnings))
        if self.fit is not None:
            fitted = self.fit.to_json()
            out.update({k: v for k, v in fitted.items() if k not in ("metrics", "temperature", "warnings")})
        if self.latest_fit is not None:
            out["metrics"] = self.metrics
        out["temperature"] = self.temperature
        put(out, "examples_needed", self.examples_needed)
        out["replay"] = [row.to_json() for row in self.replay]
        out["scenarios"] = {name: scenario.to_json() for name, scenario in self.scenarios.items()}
        if self.updates:
            out["updates"] = [update.to_json() for update in self.updates]
        return {**out, **self._folder_facts(), **self.extra}

    @classmethod
    def read(cls, fields: FieldReader) -> "AdapterRecord":
        where = fields.where
        record = cls(
            spec=fields.parsed("spec", TaskSpec.from_dict),
            init=fields.take("init", str, None),
            recipe=fields.optional("recipe", Recipe.from_dict),
            n_examples=fields.take("n_examples", int, 0),
            examples_sha256=fields.take("examples_sha256", str, None),
            seed=fields.take("seed", int, None),
            contextual_calibration=fields.take("contextual_calibration", bool, False),
            warnings=fields.list_of("warnings", str),
            temperature=fields.take("temperature", float, 1.0),
            examples_needed=fields.take("examples_needed", dict, None),
            replay=[
                ReplayRow.from_json(row, f"{where}: replay[{i}]")
                for i, row in enumerate(fields.take("replay", list, []))
            ],
            scenarios={
                name: Scenario.from_json(entry, f"{where}: scenarios[{name!r}]")
                for name, entry in fields.take("scenarios", dict, {}).items()
            },
            updates=[
                Update.from_json(entry, f"{where}: updates[{i}]")
                for i, entry in enumerate(fields.take("updates", list, []))
            ],
        )
        metrics = fields.take("metrics", dict, {})
        if "steps_run" in fields.rest:
            replaced = bool(record.updates)  # the top-level metrics are the last update's
            record.fit = FitReport.read(
                fields,
                metrics={} if replaced else metrics,
                temperature=None if replaced else record.temperature,
                warnings=list(record.warnings),
            )
        record._read_folder_facts(fields)
        return record


@dataclass(kw_only=True)
class InitRecord(Record):
    """A LoRA init's record: how it was made (algorithm, tasks, inner loop, curves, the run's config and machine)."""

    kind: ClassVar[str] = "init"
    algorithm: str | None = None  # reptile | fomaml | multitask | average
    suite: str | None = None
    tasks: list[str] = field(default_factory=list)  # the meta-train tasks
    inner_loop: InnerLoop | None = None  # the inner loop meta-training ran
    curves: dict[str, Any] | None = None  # training and validation curves
    config: dict[str, Any] | None = None  # the meta-training config
    device: str | None = None
    processes: int | None = None
    outer_steps: int | None = None
    sharded_base: bool | None = None
    sha256: str | None = None  # digest of the LoRA tensors (equal on every process)
    metrics: dict[str, Any] = field(default_factory=dict)  # the final validation
    default: bool | None = None  # the shipped init `init="default"` means for its base
    trained_on: str | None = None  # how it was trained, in words
    recipe: dict[str, Any] | None = None  # the lora_average init's recipe (train.evaluate)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        put(out, "name", self.name)
        for key in ("algorithm", "suite", "recipe"):
            put(out, key, getattr(self, key))
        if self.tasks:
            out["tasks"] = list(self.tasks)
        put(out, "inner_loop", self.inner_loop.to_dict() if self.inner_loop else None)
        for key in ("curves", "config", "created", "device", "processes", "outer_steps", "sharded_base"):
            put(out, key, getattr(self, key))
        put(out, "seconds", self.seconds)
        put(out, "sha256", self.sha256)
        if self.metrics:
            out["metrics"] = self.metrics
        put(out, "default", self.default)
        put(out, "trained_on", self.trained_on)
        return {**out, **self._folder_facts(), **self.extra}

    @classmethod
    def read(cls, fields: FieldReader) -> "InitRecord":
        record = cls(
            algorithm=fields.take("algorithm", str, None),
            suite=fields.take("suite", str, None),
            tasks=fields.list_of("tasks", str),
            inner_loop=fields.optional("inner_loop", InnerLoop.from_dict),
            curves=fields.take("curves", dict, None),
            config=fields.take("config", dict, None),
            device=fields.take("device", str, None),
            processes=fields.take("processes", int, None),
            outer_steps=fields.take("outer_steps", int, None),
            sharded_base=fields.take("sharded_base", bool, None),
            sha256=fields.take("sha256", str, None),
            metrics=fields.take("metrics", dict, {}),
            default=fields.take("default", bool, None),
            trained_on=fields.take("trained_on", str, None),
            recipe=fields.take("recipe", dict, None),
        )
        record._read_folder_facts(fields)
        return record


AnyRecord = AdapterRecord | InitRecord
KINDS = {"adapter": AdapterRecord, "init": InitRecord}


def record_from_json(data: Any, where: str = "shoplora.json") -> AnyRecord:
    """The record in a shoplora.json's parsed JSON; a field missing or of the wrong type is a RecordError naming it.
    A record without "kind" (none was ever written so, but files may be made by hand) is an adapter when it has a
    task spec, else an init."""
    fields = FieldReader(data, where)
    kind = fields.take("kind", str, "adapter" if "spec" in fields.rest else "init")
    if kind not in KINDS:
        raise RecordError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}; {FIX}")
    record = KINDS[kind].read(fields)
    record.extra = fields.rest
    return record
