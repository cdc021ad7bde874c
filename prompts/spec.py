"""What a task is: `Example` (one input/output pair) and `TaskSpec` (how to instruct, score and label it)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ShopLoRAError

FAMILIES = ("search", "service", "reviews", "product", "behaviour", "risk")
# A user's own task (adapters.adapt) need not belong to a suite family.
CUSTOM_FAMILY = "custom"
KINDS = ("classify", "generate", "extract")
# The metric each kind is scored with unless a spec says otherwise.
DEFAULT_METRIC = {"classify": "accuracy", "extract": "exact_match", "generate": "token_f1"}
METRICS = ("accuracy", "macro_f1", "exact_match", "token_f1")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Example:
    """One input and the answer the model should give, e.g. `Example("where is my parcel", "where_is_my_order")`."""

    input: str
    output: str

    def to_dict(self) -> dict[str, str]:
        return {"input": self.input, "output": self.output}


@dataclass(frozen=True)
class TaskSpec:
    """A task: its instruction (the system turn), family, kind and, for classify tasks, the closed label set."""

    name: str
    family: str
    kind: str
    instruction: str
    labels: tuple[str, ...] = ()
    metric: str = field(default="")

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ShopLoRAError(
                f"task name {self.name!r} is not allowed: use lowercase letters, digits, '.', '_' or '-' "
                "(at most 64 characters, starting with a letter or digit)"
            )
        if self.family not in (*FAMILIES, CUSTOM_FAMILY):
            raise ShopLoRAError(f"task {self.name}: family {self.family!r} is not one of {', '.join(FAMILIES)}")
        if self.kind not in KINDS:
            raise ShopLoRAError(f"task {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.instruction.strip():
            raise ShopLoRAError(f"task {self.name}: the instruction is empty; say what the model should do")
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.kind == "classify":
            if len(self.labels) < 2:
                raise ShopLoRAError(
                    f"task {self.name}: a classify task needs at least 2 labels, got {list(self.labels)}"
                )
            if len(set(self.labels)) != len(self.labels):
                raise ShopLoRAError(f"task {self.name}: labels repeat: {list(self.labels)}")
            if any(not label.strip() for label in self.labels):
                raise ShopLoRAError(f"task {self.name}: a label is empty")
        elif self.labels:
            raise ShopLoRAError(f"task {self.name}: labels are only for classify tasks, not {self.kind}")
        metric = self.metric or DEFAULT_METRIC[self.kind]
        if metric not in METRICS:
            raise ShopLoRAError(f"task {self.name}: metric {metric!r} is not one of {', '.join(METRICS)}")
        object.__setattr__(self, "metric", metric)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "kind": self.kind,
            "instruction": self.instruction,
            "labels": list(self.labels),
            "metric": self.metric,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "TaskSpec":
        unknown = set(data) - {"name", "family", "kind", "instruction", "labels", "metric"}
        if unknown:
            raise ShopLoRAError(f"task spec has unknown keys {sorted(unknown)}")
        return cls(**{**data, "labels": tuple(data.get("labels", ()))})
