"""What an evaluation grid says: summaries, paired comparisons, steps to a target, examples needed; and the
results.md table and PNG plots made from results.json.

`analyse` reads the runs of `train.evaluate`; `markdown` and `plots` read only the results.json dict, so a finished
run's report can be remade without a model.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from adapters import learning_curve
from prompts.atomic import write_atomic

from . import stats

if TYPE_CHECKING:
    from .eval_cell import Result
    from .eval_config import EvalConfig

Key = tuple[str, str, int, int]  # (task, method, k, seed)


def cell_key(task: str, method: str, k: int, seed: int) -> Key:
    """zero_shot sees no examples: one run per task, filed under k=0, seed 0, stands for every k and seed."""
    return (task, method, 0, 0) if method == "zero_shot" else (task, method, k, seed)


def groups(task_names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """("all", every task), then each task alone when there are several: the levels results are reported at."""
    every = [("all", list(task_names))]
    return every + [(name, [name]) for name in task_names] if len(task_names) > 1 else every


def analyse(runs: Sequence[Result], config: EvalConfig, task_names: Sequence[str]) -> dict:
    """summary, summary_by_task, comparisons, steps_to_target and examples_needed (a seed is summarised only
    once every task has it: a replicate of the whole grid)."""
    scores = {cell_key(r.task, r.method, r.k, r.seed): r for r in runs}

    def score(task: str, method: str, k: int, seed: int) -> float | None:
        found = scores.get(cell_key(task, method, k, seed))
        return None if found is None else found.score

    summary, by_task = [], []
    for method in config.methods:
        for k in config.shots:
            seeds = range(1 if method == "zero_shot" else config.seeds)  # zero-shot: one run per task, no seeds
            per_seed = {s: [score(t, method, k, s) for t in task_names] for s in seeds}
            replicates = [sum(v) / len(v) for v in per_seed.values() if None not in v]
            if replicates:
                mean, std = stats.mean_std(replicates)
                runs_here = [
                    scores[cell_key(t, method, k, s)] for t in task_names for s in per_seed if None not in per_seed[s]
                ]
                summary.append(
                    {
                        "method": method,
                        "k": k,
                        "mean": mean,
                        "std": std,
                        "n_seeds": len(replicates),
                        "n_tasks": len(task_names),
                        "steps": sum(r.steps for r in runs_here) / len(runs_here),
                        "seconds": sum(r.seconds for r in runs_here) / len(runs_here),
                    }
                )
            for task in task_names:
                values = [v for v in (score(task, method, k, s) for s in seeds) if v is not None]
                if values:
                    mean, std = stats.mean_std(values)
                    by_task.append(
                        {"task": task, "method": method, "k": k, "mean": mean, "std": std, "n_seeds": len(values)}
                    )
    return {
        "summary": summary,
        "summary_by_task": by_task,
        "comparisons": comparisons(score, config, task_names),
        "steps_to_target": steps_to_targets(runs, config, task_names),
        "examples_needed": examples_needed(score, config, task_names),
    }


def comparisons(score: Callable[..., float | None], config: EvalConfig, task_names: Sequence[str]) -> list[dict]:
    """The last method against each other one at each k, paired over (task, seed): all tasks, then per task."""
    reference, rows = config.methods[-1], []
    for k in config.shots:
        for other in config.methods[:-1]:
            for name, group in groups(task_names):
                pairs = [
                    (a, b)
                    for t in group
                    for s in range(config.seeds)
                    if (a := score(t, reference, k, s)) is not None and (b := score(t, other, k, s)) is not None
                ]
                if pairs:
                    test = stats.paired_test([a for a, _ in pairs], [b for _, b in pairs])
                    rows.append(
                        {
                            "method": reference,
                            "baseline": other,
                            "k": k,
                            "task": name,
                            **test.to_dict(),
                            "note": test.note(reference, other),
                        }
                    )
    return rows


def steps_to_targets(runs: Sequence[Result], config: EvalConfig, task_names: Sequence[str]) -> dict:
    """At k = curve_k: the steps each LoRA method needs to reach lora_multitask's score after its full budget,
    averaged over tasks and seeds (and per task)."""
    at_k = [r for r in runs if r.k == config.curve_k and r.curve and r.seed < config.seeds]  # this grid's seeds
    if "lora_multitask" not in config.methods or not config.curve_steps:
        return {"k": config.curve_k, "rows": [], "note": "needs lora_multitask among methods and curve_steps"}
    rows = []
    for name, group in groups(task_names):
        finals = [r.score for r in at_k if r.method == "lora_multitask" and r.task in group]
        if not finals:
            continue
        target = sum(finals) / len(finals)
        for method in config.lora_methods():
            curves = [r.curve for r in at_k if r.method == method and r.task in group]
            if not curves:
                continue
            curve = learning_curve.mean_curve(curves)
            rows.append(
                {
                    "task": name,
                    "method": method,
                    "target": target,
                    "steps": stats.steps_to_target(curve, target),
                    "budget": max(curve),
                    "curve": [[s, v] for s, v in curve.items()],
                }
            )
    return {"k": config.curve_k, "target_method": "lora_multitask", "rows": rows}


def examples_needed(score: Callable[..., float | None], config: EvalConfig, task_names: Sequence[str]) -> list[dict]:
    """Per task and method: roughly how many examples reach `target`, from the score-vs-k curve over seeds."""
    rows = []
    for task in task_names:
        for method in config.methods:
            if method == "zero_shot":
                continue
            by_seed = {
                s: [(k, v) for k in config.shots if (v := score(task, method, k, s)) is not None]
                for s in range(config.seeds)
            }
            estimate = learning_curve.examples_needed(by_seed, config.target, n_scored=config.n_test)
            if estimate is not None:
                rows.append({"task": task, "method": method, **estimate.to_dict(), "note": estimate.note(method)})
    return rows


# ------------------------------------------------------------------------------------------------------ results.md
def _cell(mean: float, std: float | None) -> str:
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def summary_table(results: dict) -> str:
    """Methods down, k across: mean ± std over seeds of the score averaged over tasks; steps and seconds per
    adaptation (averaged over k)."""
    config = results["config"]
    rows = {(r["method"], r["k"]): r for r in results["summary"]}
    lines = [
        "| method | " + " | ".join(f"k={k}" for k in config["shots"]) + " | steps | s/adaptation |",
        "|---|" + "---|" * (len(config["shots"]) + 2),
    ]
    for method in config["methods"]:
        found = [rows[(method, k)] for k in config["shots"] if (method, k) in rows]
        if not found:
            continue
        cells = [
            _cell(rows[(method, k)]["mean"], rows[(method, k)]["std"]) if (method, k) in rows else "-"
            for k in config["shots"]
        ]
        steps = sum(r["steps"] for r in found) / len(found)
        seconds = sum(r["seconds"] for r in found) / len(found)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {steps:.0f} | {seconds:.1f} |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """results.md: the summary table ready for the README, then what it means (significance, steps to target,
    examples needed) and how it was made."""
    config, git = results["config"], results["git"]
    tasks = results["tasks"]
    commit = (git["commit"] or "unknown")[:10] + (" with uncommitted changes" if git["dirty"] else "")
    lines = [
        f"# Evaluation: {Path(config['output_dir'] or 'runs/eval').name}",
        "",
        f"{results['base_model']['id']} on {results['device']}, {results['updated'][:10]}, commit {commit}, "
        f"{results['seconds'] / 60:.1f} min. {_count(len(tasks), 'task')}, {config['n_test']} test examples each "
        f"(fewer where a task has fewer), {_count(config['seeds'], 'seed')} (a support set each). Score: each "
        "task's metric "
        "(accuracy; macro-F1 for skewed real-data tasks) averaged over the tasks; mean ± std over seeds.",
        "",
        summary_table(results),
        "",
        "Tasks: "
        + ", ".join(
            f"{t['name']} ({t['metric']}{', seen in meta-training!' if t['seen_in_meta_training'] else ''})"
            for t in tasks
        )
        + ".",
        "",
    ]
    lines += ["Inits:"] + [f"- {method}: {init['made']}" for method, init in results["inits"].items()] + [""]
    lines += [f"- {note}" for note in results["notes"]]
    pooled = [c for c in results["comparisons"] if c["task"] == "all"]
    if pooled:
        lines += [
            "## Is the difference real?",
            "",
            "Two-sided sign-flip test, paired over (task, seed): the same support set and test examples.",
            "",
        ]
        lines += [f"- k={c['k']}: {c['note']}" for c in pooled] + [""]
    steps = results["steps_to_target"]
    rows = [r for r in steps["rows"] if r["task"] == "all"]
    if rows:
        logged = sorted({step for r in rows for step, _ in r["curve"]})
        lines += [
            f"## Steps to reach lora_multitask's final score at k={steps['k']} ({rows[0]['target']:.3f})",
            "",
            "The first logged step whose score (mean over tasks and seeds) reaches it; logged: "
            f"{', '.join(map(str, logged))}, so the true count may be lower, down to the logged step before.",
            "",
            "| method | steps to target | steps run |",
            "|---|---|---|",
        ]
        lines += [
            f"| {r['method']} | {'not reached' if r['steps'] is None else r['steps']} | {r['budget']} |" for r in rows
        ] + [""]
    needed = results["examples_needed"]
    if needed:
        methods = [m for m in config["methods"] if any(r["method"] == m for r in needed)]
        lines += [
            f"## How many examples reach {config['target']:.2f}?",
            "",
            "A power law of the mean error over seeds against k (or the fewest k whose mean already reaches it, "
            'marked ≤); 80% range from resampling the seeds. "-": not within reach on this evidence.',
            "",
            "| task | " + " | ".join(methods) + " |",
            "|---|" + "---|" * len(methods),
        ]
        by = {(r["task"], r["method"]): r for r in needed}
        for task in tasks:
            cells = [_needed(by.get((task["name"], m))) for m in methods]
            lines.append(f"| {task['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _needed(row: dict | None) -> str:
    """ "~45 (30-90)": the examples-needed estimate and its 80% range."""
    if row is None or row["k"] is None:
        return "-"
    k = ("≤" if row.get("observed") else "~") + str(learning_curve.whole_examples(row["k"]))
    if row["low"] is None:
        return k
    high = "?" if row["high"] is None else learning_curve.whole_examples(row["high"])
    return f"{k} ({learning_curve.whole_examples(row['low'])}-{high})"


# ------------------------------------------------------------------------------------------------------ plots
def plots(results: dict, out_dir: Path) -> list[Path]:
    """score_vs_k.png (every method) and score_vs_steps_k<curve_k>.png (LoRA methods, with the target line)."""
    written = [_plot_vs_k(results, out_dir / "score_vs_k.png")]
    steps = results["steps_to_target"]
    if any(r["task"] == "all" for r in steps["rows"]):
        written.append(_plot_vs_steps(results, out_dir / f"score_vs_steps_k{steps['k']}.png"))
    return written


def _figure():
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    return figure, figure.add_subplot()


def _plot_vs_k(results: dict, path: Path) -> Path:
    figure, axes = _figure()
    for method in results["config"]["methods"]:
        rows = sorted((r for r in results["summary"] if r["method"] == method), key=lambda r: r["k"])
        if rows:
            axes.errorbar(
                [r["k"] for r in rows],
                [r["mean"] for r in rows],
                yerr=[r["std"] or 0.0 for r in rows],
                label=method,
                marker="o",
                capsize=3,
                color=_color(results, method),
                linestyle="--" if method == "zero_shot" else "-",
            )
    axes.set_xscale("log", base=2)
    axes.set_xticks(results["config"]["shots"], [str(k) for k in results["config"]["shots"]])
    axes.set(xlabel="examples k", ylabel="score (mean over tasks)", title=_title(results, "score vs examples"))
    axes.legend(fontsize="small")
    return _save(figure, path)


def _plot_vs_steps(results: dict, path: Path) -> Path:
    figure, axes = _figure()
    steps = results["steps_to_target"]
    rows = [r for r in steps["rows"] if r["task"] == "all"]
    for row in rows:
        axes.plot(
            [s for s, _ in row["curve"]],
            [v for _, v in row["curve"]],
            marker="o",
            label=row["method"],
            color=_color(results, row["method"]),
        )
    axes.axhline(rows[0]["target"], color="grey", linestyle=":", label="lora_multitask final")
    axes.set(
        xlabel="adaptation steps",
        ylabel="score (mean over tasks and seeds)",
        title=_title(results, f"score vs adaptation steps at k={steps['k']}"),
    )
    axes.legend(fontsize="small")
    return _save(figure, path)


def _color(results: dict, method: str) -> str:
    """The same colour for a method in every plot of a run."""
    return f"C{results['config']['methods'].index(method)}"


def _title(results: dict, what: str) -> str:
    return (
        f"{what}\n{results['base_model']['id']}, {_count(len(results['tasks']), 'task')}, "
        f"{_count(results['config']['seeds'], 'seed')}"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _save(figure, path: Path) -> Path:
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=120)
    write_atomic(path, png.getvalue())
    return path
