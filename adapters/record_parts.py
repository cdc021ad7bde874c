"""The parts of an adapter's record (adapters.record): the `FitReport` of each fit, each `Update`, the `Scenario`s an
adapter answers and the `ReplayRow`s `update` draws on; each reads and writes its own piece of shoplora.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prompts import Example, TaskSpec

from .record_fields import FieldReader, put
from .training import InnerLoop


@dataclass
class FitReport:
    """What one fit (an `adapt`, or one `update`) did: its data, its inner loop, the steps it ran and kept, and how
    the kept weights score on the held-out examples."""

    n_train: int  # examples trained on: the new ones and, in an update, the scenario's kept ones; not the held out
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
        put(out, "temperature", self.temperature)
        return {**out, "refit_steps": self.refit_steps, "warnings": list(self.warnings)}

    @classmethod
    def read(cls, fields: FieldReader, **known: Any) -> "FitReport":
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
        put(out, "examples_sha256", self.examples_sha256)
        out.update(self.fit.to_json())
        put(out, "seconds", self.seconds)
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Update":
        fields = FieldReader(data, where)
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
        put(out, "weights", self.weights)
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Scenario":
        fields = FieldReader(data, where)
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
        put(out, "scenario", self.scenario)
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> "ReplayRow":
        fields = FieldReader(data, where)
        return cls(Example(fields.take("input", str), fields.take("output", str)), fields.take("scenario", str, None))
