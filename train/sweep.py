"""The adaptation-recipe sweep: which epochs, learning rate, batch size and loss `adapt` should default to.

    python -m train.sweep --tasks service-intent-petshop,real-service-intent-bank --shots 32,120 \
        --variants lr=5e-4 lr=1e-3 loss=labels --out ~/shoplora-runs/sweep.json

Every score comes from a task's train part only: the support set is drawn from it as the benchmark draws it, and
the validation examples are other train examples; test examples are never looked at, so the recipe chosen here can
be judged on them by `shoplora eval`. Each variant is the default recipe with the given fields changed. Results are
appended to --out as they come, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from adapters import adapt, load_base
from adapters.fit import AdaptationWarning
from adapters.specs import LabelCoverageWarning
from adapters.recipe import DEFAULT_RECIPE, Recipe
from prompts import Example, suite
from prompts.atomic import write_atomic
from prompts.task import Task

from .eval_tasks import support_set


def validation_set(task: Task, support: Sequence[Example], n: int, seed: int) -> list[Example]:
    """`n` train examples of `task` outside `support`: what a recipe is chosen by."""
    taken = {(e.input, e.output) for e in support}
    rest = [e for e in task.examples("train") if (e.input, e.output) not in taken]
    return random.Random(f"validation:{seed}:{task.name}").sample(rest, min(n, len(rest)))


def variant(text: str) -> tuple[str, Recipe]:
    """ "lr=1e-3,epochs=12" -> the default recipe with those fields; "default" -> the default recipe."""
    if text == "default":
        return text, DEFAULT_RECIPE
    changes: dict[str, Any] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        field = Recipe.__dataclass_fields__.get(key)
        if field is None:
            raise SystemExit(f"unknown recipe field {key!r}; known: {', '.join(Recipe.__dataclass_fields__)}")
        if field.type == "bool":
            changes[key] = value.lower() == "true"
        else:
            changes[key] = (
                value if field.type == "str" else (float(value) if "." in value or "e" in value else int(value))
            )
    return text, replace(DEFAULT_RECIPE, **changes)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", required=True, help="comma-separated task names")
    parser.add_argument("--shots", default="32", help="comma-separated k")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=["default"], help="default or field=value[,field=value]")
    parser.add_argument("--inits", default="default", help="comma-separated: default, a shipped name, none")
    parser.add_argument("--n-validation", type=int, default=100)
    parser.add_argument("--model", help="base model (default: the embedded one)")
    parser.add_argument("--out", required=True, help="JSON file of results (appended to; resumes)")
    args = parser.parse_args(argv)

    out = Path(args.out).expanduser()
    rows: list[dict] = json.loads(out.read_text()) if out.exists() else []
    done = {(r["task"], r["k"], r["seed"], r["init"], r["variant"]) for r in rows}
    base = load_base(args.model)
    for seed in range(args.seeds):
        for name in args.tasks.split(","):
            task = suite.get_task(name)
            for k in (int(k) for k in args.shots.split(",")):
                support = support_set(task, k, seed, cover_labels=True)
                validation = validation_set(task, support, args.n_validation, seed)
                for init in args.inits.split(","):
                    for label, recipe in map(variant, args.variants):
                        if (name, k, seed, init, label) in done:
                            continue
                        start = time.perf_counter()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", LabelCoverageWarning)
                            warnings.simplefilter("ignore", AdaptationWarning)
                            adapter = adapt(
                                base,
                                support,
                                spec=task.spec,
                                init=None if init == "none" else init,
                                seed=seed,
                                recipe=recipe,
                            )
                        seconds = time.perf_counter() - start
                        scores = adapter.evaluate(validation)
                        record, fit = adapter.record, adapter.record.fit
                        adapter.unload()
                        row = {
                            "task": name,
                            "k": k,
                            "seed": seed,
                            "init": init,
                            "variant": label,
                            "recipe": recipe.to_dict(),
                            "validation": {m: v for m, v in scores.items()},
                            "held_out_accuracy": fit.metrics.get("held_out_accuracy"),
                            "held_out_accuracy_before": fit.metrics.get("held_out_accuracy_before"),
                            "steps_run": fit.steps_run,
                            "steps_kept": fit.steps_kept,
                            "seconds": round(seconds, 1),
                            "warnings": record.warnings,
                        }
                        rows.append(row)
                        write_atomic(out, json.dumps(rows, indent=1))
                        metric = task.spec.metric
                        print(
                            f"{name} k={k} seed {seed} {init} {label}: {scores.get(metric, 0):.3f} {metric} "
                            f"(steps {fit.steps_kept}/{fit.steps_run}, {seconds:.0f} s)",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
