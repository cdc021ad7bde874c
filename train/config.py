"""Run configs: dataclasses loaded from YAML with `key=value` command-line overrides.

Every field is checked when the config is built; an unknown key or a bad value is a `ConfigError` that names the
field and says what would be accepted. Example: `load_config("configs/tiny.yaml", ["outer_steps=2"])`. The
meta-training config is `MetaConfig`; the evaluation benchmark's (`train.eval_config.EvalConfig`) loads the same way
with `load_config(path, overrides, EvalConfig)`. A field may hold a nested config dataclass, written as a mapping.
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from adapters.base import DTYPES, QUANTIZATIONS
from adapters.trackers import REPORT_TO
from adapters.lora import ALL_LINEAR, LoraSettings
from adapters.training import OPTIMIZERS, InnerLoop, inner_loop_problem
from prompts.errors import ShopLoRAError
from prompts.suite import SUITES

ALGORITHMS = ("reptile", "fomaml", "multitask")
SCHEDULES = ("cosine", "linear", "constant")
QUERY_LOSSES = ("answer", "labels")
# The inner-loop settings (InnerLoop's names) and the MetaConfig fields that hold them.
INNER_LOOP_FIELDS = {
    "steps": "inner_steps",
    "lr": "inner_lr",
    "optimizer": "inner_optimizer",
    "batch_size": "inner_batch_size",
    "max_length": "max_length",
}
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class ConfigError(ShopLoRAError):
    """A run config with an unknown key or a bad value."""


def help_field(text: str, default: Any) -> Any:
    """A config field with `default` and its help `text` (in the field's metadata: see MetaConfig)."""
    return field(default=default, metadata={"help": text})


def require(config: Any, ok: bool, name: str, rule: str) -> None:
    """A ConfigError naming field `name`, the rule it breaks and its value, unless `ok`."""
    if not ok:
        raise ConfigError(f"config field {name!r} {rule}, got {getattr(config, name)!r}")


@dataclass(frozen=True)
class MetaConfig:
    """What `python -m train.meta` runs. Field help is in `fields(MetaConfig)[i].metadata["help"]`."""

    # what to train
    base_model: str | None = help_field("hub id or local directory; null = the embedded SmolLM2-135M-Instruct", None)
    suite: str | tuple[str, ...] = help_field(
        "task suite whose meta-train split is used, or a list of suites pooled (e.g. [ecommerce-v1, real-v1]: the "
        "real-data tasks too; `shoplora tasks list`)",
        "ecommerce-v1",
    )
    tasks: tuple[str, ...] = help_field("only these meta-train tasks (empty = all of the suites' meta-train tasks)", ())
    algorithm: str = help_field(
        "reptile | fomaml (first-order MAML) | multitask (the plain multi-task SFT baseline)", "reptile"
    )
    output_dir: str | None = help_field("where the checkpoint and the init go; null = runs/<config file name>/", None)
    start_from: str | None = help_field(
        "the LoRA tensors training starts from: null = the standard LoRA init, or an init (a shipped name such as "
        "smollm2-135m-multitask, or a folder) with the same lora_r, lora_alpha and lora_targets, e.g. meta-training "
        "on top of the multi-task init",
        None,
    )
    # episodes
    outer_steps: int = help_field("outer (meta) updates", 100)
    meta_batch_size: int = help_field("tasks per outer step, over all processes (a multiple of the process count)", 4)
    support_k: tuple[int, int] = help_field("[min, max] support examples per episode, drawn per task and step", (8, 32))
    query_k: int = help_field("query examples per episode: FOMAML's meta-gradient and the query-loss curve", 8)
    label_subsets: bool = help_field("classify episodes use a random subset of the labels in a shuffled order", True)
    label_renaming: float = help_field(
        "share of classify episodes whose answers are permuted among their labels (meta-augmentation: the answer is "
        "then learnable from the support set only); 0 = never",
        0.0,
    )
    max_length: int = help_field("tokens of prompt + answer; longer examples are skipped", 256)
    # inner loop: recorded in the init and reused as is by adaptation
    inner_steps: int = help_field("optimizer steps on the support set per episode", 8)
    inner_lr: float = help_field("inner-loop learning rate (also the multitask learning rate)", 1e-3)
    inner_optimizer: str = help_field("adam | sgd", "adam")
    inner_batch_size: int = help_field("examples per inner step", 8)
    init_query_weight: float = help_field(
        "fomaml: also follow the query gradient at the init itself (before the inner loop), with this weight; "
        "keeps the init good before adapting and after fewer or more steps than inner_steps (MAML++'s multi-step "
        "loss, first-order, on its end points)",
        0.0,
    )
    query_loss: str = help_field(
        "fomaml: the loss on the query set whose gradient moves the init: answer (cross-entropy of the answer tokens, "
        "as the inner loop trains) | labels (classify episodes: the right label's cross-entropy among the episode's "
        "labels, scored as prediction scores them; other kinds keep answer)",
        "answer",
    )
    # outer loop
    outer_optimizer: str = help_field("adam | sgd: how the init moves along the averaged meta-gradient", "adam")
    outer_lr: float = help_field("outer learning rate at the end of warm-up", 1e-3)
    warmup_steps: int = help_field("outer steps of linear warm-up", 0)
    schedule: str = help_field("cosine | linear | constant decay after warm-up (to 10% of outer_lr)", "cosine")
    # LoRA and the base model
    lora_r: int = help_field("LoRA rank (16 is vLLM's default maximum)", 16)
    lora_alpha: int = help_field("LoRA alpha: the update is scaled by alpha / r", 32)
    lora_targets: tuple[str, ...] | str = help_field("module names such as [q_proj, v_proj], or all-linear", ALL_LINEAR)
    quantization: str | None = help_field("null, or 4bit (NF4 through bitsandbytes, CUDA only: QLoRA)", None)
    dtype: str = help_field("auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16", "auto")
    gradient_checkpointing: bool = help_field("recompute activations in backward: less memory, ~30% slower", False)
    # bookkeeping
    seed: int = help_field("seeds the LoRA init, the episodes and the batch order", 0)
    save_every: int = help_field("checkpoint every N outer steps (0 = only at the end)", 50)
    resume: bool = help_field("continue from output_dir/checkpoint when there is one", False)
    report_to: str = help_field(
        "experiment tracker, as accelerate names it: tensorboard (output_dir/<run name>) | wandb | mlflow | none",
        "none",
    )
    stop_after: int = help_field(
        "stop after this outer step, checkpointed, to continue later with resume (0 = run all)", 0
    )
    validate_every: int = help_field("validation every N outer steps (0 = only before and after training)", 0)
    validation_tasks: int = help_field("meta-train tasks whose test part validates: loss before vs after adapting", 4)
    validation_query: int = help_field("test examples per validation task the loss is measured on", 32)

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, rule: str) -> None:
            require(self, ok, name, rule)

        check(self.algorithm in ALGORITHMS, "algorithm", f"must be one of {', '.join(ALGORITHMS)}")
        suites = self.suites()
        check(
            bool(suites) and set(suites) <= set(SUITES) and len(set(suites)) == len(suites),
            "suite",
            f"must name one suite or a list of distinct suites of {', '.join(SUITES)}",
        )
        for name in (
            "outer_steps",
            "meta_batch_size",
            "query_k",
            "lora_r",
            "lora_alpha",
            "validation_query",
        ):
            check(getattr(self, name) >= 1, name, "must be >= 1")
        check(self.report_to in REPORT_TO, "report_to", f"must be one of {' | '.join(REPORT_TO[1:])} | none")
        check(0.0 <= self.label_renaming <= 1.0, "label_renaming", "must be a share between 0 and 1")
        for name in ("warmup_steps", "save_every", "stop_after", "validate_every", "validation_tasks"):
            check(getattr(self, name) >= 0, name, "must be >= 0")
        check(1 <= self.support_k[0] <= self.support_k[1], "support_k", "must be [min, max] with 1 <= min <= max")
        check(self.warmup_steps <= self.outer_steps, "warmup_steps", f"must be <= outer_steps ({self.outer_steps})")
        problem = inner_loop_problem({setting: getattr(self, name) for setting, name in INNER_LOOP_FIELDS.items()})
        if problem is not None:  # the rules adaptation's InnerLoop keeps, named as this config's fields
            check(False, INNER_LOOP_FIELDS[problem[0]], problem[1])
        check(self.outer_lr > 0, "outer_lr", "must be > 0")
        check(self.init_query_weight >= 0, "init_query_weight", "must be >= 0")
        check(
            self.init_query_weight == 0 or self.algorithm == "fomaml",
            "init_query_weight",
            "is for algorithm: fomaml only (reptile has no query gradient; multitask trains the init directly)",
        )
        check(self.query_loss in QUERY_LOSSES, "query_loss", f"must be one of {', '.join(QUERY_LOSSES)}")
        check(
            self.query_loss == "answer" or self.algorithm == "fomaml",
            "query_loss",
            "other than answer is for algorithm: fomaml only (only its meta-gradient is a query-loss gradient)",
        )
        check(
            self.query_loss == "answer" or not self.gradient_checkpointing,
            "query_loss",
            "labels cannot run with gradient_checkpointing: true (the label scorer reuses the prompt's KV cache, "
            "which checkpointing turns off in training); set one of them back (query_loss: answer)",
        )
        check(self.outer_optimizer in OPTIMIZERS, "outer_optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        check(self.schedule in SCHEDULES, "schedule", f"must be one of {', '.join(SCHEDULES)}")
        check(self.quantization in QUANTIZATIONS, "quantization", "must be null or 4bit")
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
        check(
            isinstance(self.lora_targets, tuple) or self.lora_targets == ALL_LINEAR,
            "lora_targets",
            f"must be a list of module names or {ALL_LINEAR!r}",
        )

    def suites(self) -> tuple[str, ...]:
        return (self.suite,) if isinstance(self.suite, str) else self.suite

    def lora_settings(self) -> LoraSettings:
        return LoraSettings(r=self.lora_r, alpha=self.lora_alpha, targets=self.lora_targets)

    def inner_loop(self) -> InnerLoop:
        """The inner loop as adaptation will run it from the init this config trains."""
        return InnerLoop(**{setting: getattr(self, name) for setting, name in INNER_LOOP_FIELDS.items()})

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def describe_fields(kind: type = MetaConfig) -> str:
    """One line per config field: name, default and help (the command line's --help)."""
    return "\n".join(f"  {f.name} = {f.default}: {f.metadata['help']}" for f in fields(kind))


def load_config(path: str | Path, overrides: Sequence[str] = (), kind: type = MetaConfig) -> Any:
    """The `kind` config in YAML file `path`, with `key=value` overrides applied (values as they would be in
    YAML); `output_dir` defaults to runs/<file name>/."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}; the shipped ones are in configs/ (e.g. configs/embedded.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of config fields (key: value), not a {type(data).__name__}")
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} is not key=value (e.g. outer_steps=10)")
        data[key.strip()] = yaml.safe_load(value) if value.strip() else None
    if data.get("output_dir") is None:
        data["output_dir"] = str(Path("runs") / path.stem)
    return build_config(data, kind)


def build_config(data: dict, kind: type = MetaConfig) -> Any:
    """A `kind` config (a MetaConfig unless said) from plain values (YAML's types), converted to each field's
    type."""
    known = {f.name: f for f in fields(kind)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config field(s) {', '.join(map(repr, unknown))}; the fields are: {', '.join(known)}"
        )
    hints = typing.get_type_hints(kind)
    return kind(**{key: _convert(key, hints[key], value) for key, value in data.items()})


def _convert(name: str, kind: Any, value: Any) -> Any:
    """`value` as type `kind`; strings from the command line such as '1e-3', 'true' or '8,32' are understood."""
    options = [
        o for o in (typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)) if o is not type(None)
    ]
    if value is None:
        if len(options) < len(typing.get_args(kind)):  # the union included None
            return None
        raise ConfigError(f"config field {name!r} must be set (null is not allowed here)")
    if isinstance(value, str) and str in options:
        if "," not in value or options == [str]:
            return value  # e.g. lora_targets: all-linear
        options = [o for o in options if o is not str]  # 'q_proj,v_proj' for a field that takes a list: the list
    try:
        return _first_fit(options, value)
    except ValueError as error:
        raise ConfigError(f"config field {name!r} must be {error}, got {value!r}") from None
    except ConfigError as error:  # a bad field inside a nested mapping, e.g. one of an evaluation's tasks
        raise ConfigError(f"in config field {name!r}: {error}") from None


def _first_fit(options: Sequence[Any], value: Any) -> Any:
    """`value` as the first of the types `options` that takes it; a ValueError lists what each wanted."""
    wanted = []
    for option in options:
        try:
            return _convert_one(option, value)
        except ValueError as error:
            wanted.append(str(error))
    raise ValueError(" or ".join(wanted))


def _convert_one(kind: Any, value: Any) -> Any:
    """`value` as `kind`; a ValueError says what was expected."""
    if isinstance(kind, types.UnionType):  # e.g. the items of a list that holds names and mappings
        return _first_fit(typing.get_args(kind), value)
    if is_dataclass(kind):
        if not isinstance(value, dict):
            raise ValueError(f"a mapping of {', '.join(f.name for f in fields(kind))}")
        return build_config(value, kind)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in TRUE + FALSE:
            return str(value).lower() in TRUE
        raise ValueError("true or false")
    if kind is float or kind is int:
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (kind is int and not number.is_integer()):
            raise ValueError("a whole number" if kind is int else "a number")
        return int(number) if kind is int else number
    if kind is str:
        if not isinstance(value, str):
            raise ValueError("a string")
        return value
    if typing.get_origin(kind) is tuple:
        item_kind, *rest = typing.get_args(kind)
        items = value.split(",") if isinstance(value, str) else value
        items = list(items) if isinstance(items, (list, tuple)) else [items]
        if rest != [Ellipsis]:  # a fixed-length pair such as support_k; one number n means [n, n]
            size = 1 + len(rest)
            items = items * size if len(items) == 1 else items
            if len(items) != size:
                raise ValueError(f"a list of {size} values such as [8, 32]")
        try:
            return tuple(_convert_one(item_kind, item.strip() if isinstance(item, str) else item) for item in items)
        except ValueError as error:
            raise ValueError(f"a list ({error} each)") from None
    raise ValueError(f"of a type the config cannot read ({kind})")
