"""Support/query episodes over many tasks: what one outer step of meta-training sees.

An outer step's episodes are a pure function of (seed, step): every process draws the same meta-batch plan and
renders only its own share, and a resumed run continues with exactly the episodes it would have seen. Examples are
tokenised once per task and reused; only label-subset episodes of classify tasks are rendered afresh, since their
system turn lists other labels.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any, Sequence

from prompts import suite
from prompts.errors import ShopLoRAError
from prompts.render import Rendered, render
from prompts.spec import Example, TaskSpec
from prompts.task import Task

from .config import ConfigError, MetaConfig


@dataclass(frozen=True)
class Episode:
    """One task's few-shot problem: adapt on `support`, judge the adapted weights on `query`."""

    task: str
    spec: TaskSpec  # the task's spec, or its label-subset variant for this episode
    support: list[Rendered]
    query: list[Rendered]
    rename: dict[str, str] | None = None  # the answers' label permutation (meta-augmentation), if any


class TaskPool:
    """One part ("train" or "test") of a task, rendered lazily and once under the task's own spec."""

    def __init__(self, task: Task, part: str, tokenizer: Any, max_length: int) -> None:
        self.spec = task.spec
        self.examples: list[Example] = task.examples(part)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._rendered: dict[int, Rendered] = {}

    def render(self, index: int, spec: TaskSpec, rename: dict[str, str] | None = None) -> Rendered | None:
        """Example `index` under `spec`, its answer renamed by `rename` if given; None when it is longer than
        max_length (skipped, never truncated)."""
        plain = spec == self.spec and rename is None
        if plain and index in self._rendered:
            return self._rendered[index]
        example = self.examples[index]
        if rename is not None:
            example = replace(example, output=rename[example.output])
        rendered = render(spec, example, self.tokenizer)
        if plain:
            self._rendered[index] = rendered
        return rendered if len(rendered) <= self.max_length else None

    def take(
        self, indices: Sequence[int], n: int, spec: TaskSpec, rename: dict[str, str] | None = None
    ) -> list[Rendered]:
        """The first `n` examples of `indices` that fit in max_length."""
        taken = []
        for index in indices:
            rendered = self.render(index, spec, rename)
            if rendered is not None:
                taken.append(rendered)
                if len(taken) == n:
                    return taken
        raise ShopLoRAError(
            f"task {self.spec.name}: only {len(taken)} of the {n} examples asked for fit in "
            f"max_length={self.max_length} tokens; raise max_length or lower support_k/query_k"
        )


def label_subset(spec: TaskSpec, rng: random.Random) -> TaskSpec:
    """The spec with a random subset of at least half of its labels (at least 2), in a shuffled order, so the init
    does not learn one fixed label list per task but reading the labels it is given."""
    size = rng.randint(min(len(spec.labels), max(2, math.ceil(len(spec.labels) / 2))), len(spec.labels))
    return replace(spec, labels=tuple(rng.sample(spec.labels, size)))


def label_permutation(labels: Sequence[str], rng: random.Random) -> dict[str, str]:
    """Each label mapped to another of the same list (a random permutation that moves at least one label)."""
    shuffled = list(labels)
    while len(shuffled) > 1 and shuffled == list(labels):
        rng.shuffle(shuffled)
    return dict(zip(labels, shuffled))


class EpisodeSampler:
    """The meta-batch of outer step `step`: `meta_batch_size` distinct tasks, each with a support set of k examples
    (k drawn from `support_k`) and `query_k` query examples, disjoint, from the tasks' train parts.

    With `label_renaming` > 0, that share of classify episodes has its answers permuted among the episode's labels
    (support and query alike): the label a message gets is then only learnable from the support set, never from
    the label words themselves, so the init is pushed to learn fast from examples instead of memorising each task's
    answers (meta-augmentation: the memorisation problem of Yin et al. 2020, Rajendran et al. 2020)."""

    def __init__(
        self,
        tasks: Sequence[Task],
        tokenizer: Any,
        *,
        meta_batch_size: int,
        support_k: tuple[int, int],
        query_k: int,
        label_subsets: bool,
        max_length: int,
        seed: int,
        label_renaming: float = 0.0,
    ) -> None:
        if not 0.0 <= label_renaming <= 1.0:
            raise ShopLoRAError(f"label_renaming is a share of episodes, between 0 and 1; got {label_renaming}")
        self.pools = [TaskPool(task, "train", tokenizer, max_length) for task in tasks]
        self.meta_batch_size = meta_batch_size
        self.support_k = support_k
        self.query_k = query_k
        self.label_subsets = label_subsets
        self.label_renaming = label_renaming
        self.seed = seed

    def sample(self, step: int, rank: int = 0, world: int = 1) -> list[Episode]:
        """Process `rank` of `world`'s episodes of outer step `step` (its share: every world-th of the meta-batch)."""
        rng = random.Random(f"{self.seed}:episodes:{step}")
        plans = []  # the whole meta-batch is drawn on every process so the random stream is the same everywhere
        for pool in rng.sample(self.pools, self.meta_batch_size):
            k = rng.randint(*self.support_k)
            spec = pool.spec
            if self.label_subsets and spec.kind == "classify":
                spec = label_subset(spec, rng)
            allowed = [i for i, e in enumerate(pool.examples) if spec.kind != "classify" or e.output in spec.labels]
            order = rng.sample(allowed, len(allowed))
            rename = None
            # Drawn only when asked for, so runs without renaming see the episodes they always saw (resume).
            if self.label_renaming > 0 and spec.kind == "classify" and rng.random() < self.label_renaming:
                rename = label_permutation(spec.labels, rng)
            plans.append((pool, spec, k, order, rename))
        episodes = []
        for pool, spec, k, order, rename in plans[rank::world]:
            chosen = pool.take(order, k + self.query_k, spec, rename)
            episodes.append(Episode(pool.spec.name, spec, chosen[:k], chosen[k:], rename))
        return episodes


def meta_train_tasks(config: MetaConfig) -> list[Task]:
    """The meta-train tasks `config` names (all of its suites' when it names none); a ConfigError for a name that is
    no such task, or a meta-batch larger than the tasks."""
    tasks = [t for name in config.suites() for t in suite.tasks(name, split="meta-train")]
    by_name = {t.name: t for t in tasks}
    unknown = [name for name in config.tasks if name not in by_name]
    if unknown:
        raise ConfigError(
            f"config field 'tasks' names {unknown}, which are not meta-train tasks of "
            f"{' + '.join(config.suites())}; see `shoplora tasks list --split meta-train`"
        )
    chosen = [by_name[name] for name in config.tasks] if config.tasks else tasks
    if config.meta_batch_size > len(chosen):
        raise ConfigError(
            f"meta_batch_size {config.meta_batch_size} is more than the {len(chosen)} "
            f"meta-train tasks; lower it to at most {len(chosen)}"
        )
    return chosen


def validation_tasks(tasks: Sequence[Task], n: int) -> list[Task]:
    """`n` meta-train tasks spread over the families (one per family in turn), whose *test* parts validate."""
    families: dict[str, list[Task]] = {}
    for task in tasks:
        families.setdefault(task.spec.family, []).append(task)
    spread = [
        group[i]
        for i in range(max(map(len, families.values()), default=0))
        for group in families.values()
        if i < len(group)
    ]
    return spread[:n]


def validation_episodes(
    tasks: Sequence[Task], tokenizer: Any, *, k: int, n_query: int, max_length: int
) -> list[Episode]:
    """Fixed episodes from the tasks' test parts (examples meta-training never trains on): the same every time, so
    validation losses are comparable across outer steps."""
    episodes = []
    for task in tasks:
        pool = TaskPool(task, "test", tokenizer, max_length)
        chosen = pool.take(range(len(pool.examples)), k + n_query, task.spec)
        episodes.append(Episode(task.name, task.spec, chosen[:k], chosen[k:]))
    return episodes
