"""What an adapter folder's `shoplora.json` holds, typed: `AdapterRecord` (a task learned by `adapt` and `update`),
`InitRecord` (a LoRA init made by meta-training) and the `FitReport` of each fit.

`record_from_json` and `to_json()` read and write the JSON ShopLoRA has always written, key for key, so folders saved
before and the shipped inits load. Keys this version does not know are kept in `extra` and written back. A config a
person types rejects unknown keys (a typo must not pass unnoticed); a record is written by a program, and refusing a
newer ShopLoRA's key, or a note added by hand (as the shipped inits' `trained_on` once was), would make an adapter
unloadable for a fact prediction does not need, and dropping it would lose it at the next save.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from prompts import Example, ShopLoRAError, TaskSpec

from .recipe import Recipe
from .training import InnerLoop


class RecordError(ShopLoRAError):
    """A shoplora.json that is not a record: a field missing or of the wrong type."""


_REQUIRED = object()
_TYPE_NAMES = {
    int: "a whole number",
    float: "a number",
    str: "a text",
    bool: "true or false",
    list: "a list",
    dict: "a JSON object",
}


class _Reader:
    """Reads one JSON object field by field, checking each type; what is left unread is the object's `extra`."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise RecordError(f"{where} must be a JSON object, got {_shown(data)}; {_FIX}")
        self.rest, self.where = dict(data), where

    def take(self, key: str, kind: type, default: Any = _REQUIRED) -> Any:
        """`key`'s value, checked to be a `kind` (None passes where the default is None), or `default` if missing."""
        if key not in self.rest:
            if default is _REQUIRED:
                raise RecordError(f"{self.where} has no {key!r}; {_FIX}")
            return default
        value = self.rest.pop(key)
        if value is None and default is None:
            return None
        if not _fits(value, kind):
            raise RecordError(f"{self.where}: {key!r} must be {_TYPE_NAMES[kind]}, got {_shown(value)}; {_FIX}")
        return float(value) if kind is float else value

    def list_of(self, key: str, kind: type) -> list:
        """`key`'s list (empty when missing), every item a `kind`."""
        values = self.take(key, list, [])
        if not all(_fits(v, kind) for v in values):
            raise RecordError(
                f"{self.where}: {key!r} must be a list, each item {_TYPE_NAMES[kind]}, got {_shown(values)}; {_FIX}"
            )
        return [float(v) for v in values] if kind is float else list(values)

    def parsed(self, key: str, parse: Any) -> Any:
        """`key`'s JSON object made into a typed value by `parse` (TaskSpec.from_dict, ...), its errors naming `key`."""
        return self._parse(key, parse, self.take(key, dict))

    def optional(self, key: str, parse: Any) -> Any:
        """Like `parsed`, None when the key is missing or null."""
        value = self.take(key, dict, None)
        return None if value is None else self._parse(key, parse, value)

    def _parse(self, key: str, parse: Any, value: dict) -> Any:
        try:
            return parse(value)
        except (ShopLoRAError, TypeError, ValueError) as error:
            raise RecordError(f"{self.where}: {key!r} is not valid ({error}); {_FIX}") from None


_FIX = "the file was edited or damaged: restore a previous version of the folder, or save or train it again"


def _fits(value: Any, kind: type) -> bool:
    """Whether a JSON value is a `kind`: a whole number passes as a number, true and false are no numbers."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text[:40]}... ({type(value).__name__})" if len(text) > 40 else f"{text} ({type(value).__name__})"


def _put(out: dict, key: str, value: Any) -> None:
    """Optional fields are written only when set: a record written without them reads back the same."""
    if value is not None:
        out[key] = value


# ---------------------------------------------------------------------------------------------------- parts
@dataclass
class FitReport:
    """What one fit (an `adapt`, or one `update`) did: its data, its inner loop, the steps it ran and kept, and how
    the kept weights score on the held-out examples."""

    n_train: int  # examples trained on (replayed ones not counted)
    n_held_out: int  # examples held out to choose the kept weights and calibrate
    inner_loop: InnerLoop  # the loop that ran
    steps_run: int
    steps_kept: int  # the step whose weights were kept (0: the starting weights)
    train_loss: list[float]  # per step run
    metrics: dict[str, Any]  # held-out metrics of the kept weights ("held_out_accuracy", ...; {} without held out)
    temperature: float | None = None  # the confidence temperature fitted (None: not known)
    refit_steps: int = 0  # steps of the refit on every example (Recipe.refit), 0 when none ran
    warnings: list[str] = field(default_factory=list)  # what a user must hear before trusting the weights

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n_train": self.n_train,
            "n_held_out": self.n_held_out,
            "inner_loop": self.inner_loop.to_dict(),
            "steps_run": self.steps_run,
            "steps_kept": self.steps_kept,
            "train_loss": list(self.train_loss),
            "metrics": self.metrics,
        }
        _put(out, "temperature", self.temperature)
        return {**out, "refit_steps": self.refit_steps, "warnings": list(self.warnings)}

    @classmethod
    def read(cls, fields: _Reader, **known: Any) -> "FitReport":
        """The fit's fields out of `fields` (an update's object, or an adapter record's top level, which keeps
        `metrics`, `temperature` and `warnings` itself: passed in `known`)."""
        values = {
            "n_train": fields.take("n_train", int, 0),
            "n_held_out": fields.take("n_held_out", int, 0),
            "inner_loop": fields.optional("inner_loop", InnerLoop.from_dict) or InnerLoop(),
            "steps_run": fields.take("steps_run", int),
            "train_loss": fields.list_of("train_loss", float),
            "refit_steps": fields.take("refit_steps", int, 0),
        }
        values["steps_kept"] = fields.take("steps_kept", int, values["steps_run"])
        if not known:
            known = {
                "metrics": fields.take("metrics", dict, {}),
                "temperature": fields.take("temperature", float, None),
                "warnings": fields.list_of("warnings", str),
            }
        return cls(**values, **known)


@dataclass
class Update:
    """One `update`: the scenario it taught, its examples and replayed ones, and its fit."""

    scenario: str
    n_examples: int
    n_replayed: int
    fit: FitReport
    examples_sha256: str | None = None
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {"scenario": self.scenario, "n_examples": self.n_examples, "n_replayed": self.n_replayed}
        _put(out, "examples_sha256", self.examples_sha256)
        out.update(self.fit.to_json())
        _put(out, "seconds", self.seconds)
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Update":
        fields = _Reader(data, where)
        update = cls(
            scenario=fields.take("scenario", str),
            n_examples=fields.take("n_examples", int, 0),
            n_replayed=fields.take("n_replayed", int, 0),
            examples_sha256=fields.take("examples_sha256", str, None),
            seconds=fields.take("seconds", float, None),
            fit=FitReport.read(fields),
        )
        update.extra = fields.rest
        return update


@dataclass
class Scenario:
    """A scenario an adapter answers: its task, its confidence temperature, and which weights answer it."""

    spec: TaskSpec
    temperature: float = 1.0
    # "." the adapter's main weights, "scenarios/<name>" a folder of its own; None until the adapter is saved
    weights: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {"spec": self.spec.to_dict(), "temperature": self.temperature}
        _put(out, "weights", self.weights)
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Scenario":
        fields = _Reader(data, where)
        scenario = cls(
            spec=fields.parsed("spec", TaskSpec.from_dict),
            temperature=fields.take("temperature", float, 1.0),
            weights=fields.take("weights", str, None),
        )
        scenario.extra = fields.rest
        return scenario


@dataclass(frozen=True)
class ReplayRow:
    """An example kept for replay, with the scenario it belongs to (None in adapters saved before scenarios)."""

    example: Example
    scenario: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = self.example.to_dict()
        _put(out, "scenario", self.scenario)
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> "ReplayRow":
        fields = _Reader(data, where)
        return cls(Example(fields.take("input", str), fields.take("output", str)), fields.take("scenario", str, None))


# -------------------------------------------------------------------------------------------------- records
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

    def _read_folder_facts(self, fields: _Reader) -> None:
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
        _put(out, "seconds", self.seconds)
        _put(out, "created", self.created)
        _put(out, "name", self.name)
        _put(out, "base_model", self.base_model)
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
        _put(out, "init", self.init)
        _put(out, "recipe", self.recipe.to_dict() if self.recipe else None)
        out["n_examples"] = self.n_examples
        _put(out, "examples_sha256", self.examples_sha256)
        _put(out, "seed", self.seed)
        out.update(contextual_calibration=self.contextual_calibration, warnings=list(self.warnings))
        if self.fit is not None:
            fitted = self.fit.to_json()
            out.update({k: v for k, v in fitted.items() if k not in ("metrics", "temperature", "warnings")})
        if self.latest_fit is not None:
            out["metrics"] = self.metrics
        out["temperature"] = self.temperature
        _put(out, "examples_needed", self.examples_needed)
        out["replay"] = [row.to_json() for row in self.replay]
        out["scenarios"] = {name: scenario.to_json() for name, scenario in self.scenarios.items()}
        if self.updates:
            out["updates"] = [update.to_json() for update in self.updates]
        return {**out, **self._folder_facts(), **self.extra}

    @classmethod
    def read(cls, fields: _Reader) -> "AdapterRecord":
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
        _put(out, "name", self.name)
        for key in ("algorithm", "suite", "recipe"):
            _put(out, key, getattr(self, key))
        if self.tasks:
            out["tasks"] = list(self.tasks)
        _put(out, "inner_loop", self.inner_loop.to_dict() if self.inner_loop else None)
        for key in ("curves", "config", "created", "device", "processes", "outer_steps", "sharded_base"):
            _put(out, key, getattr(self, key))
        _put(out, "seconds", self.seconds)
        _put(out, "sha256", self.sha256)
        if self.metrics:
            out["metrics"] = self.metrics
        _put(out, "default", self.default)
        _put(out, "trained_on", self.trained_on)
        return {**out, **self._folder_facts(), **self.extra}

    @classmethod
    def read(cls, fields: _Reader) -> "InitRecord":
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
    fields = _Reader(data, where)
    kind = fields.take("kind", str, "adapter" if "spec" in fields.rest else "init")
    if kind not in KINDS:
        raise RecordError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}; {_FIX}")
    record = KINDS[kind].read(fields)
    record.extra = fields.rest
    return record
