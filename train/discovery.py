"""How well new-need discovery finds intents an adapter was never taught, and what teaching them costs.

    python -m train.discovery [--out ~/shoplora-runs/discovery.json] [--tasks service-intent-petshop,...] [--seeds 3]

Per task: some intents are held out; an adapter learns the others from k examples each; a stream of the task's
other training messages (every intent) is scored, and the messages below `abstain_below` confidence are the unsure
set. Those are clustered three ways, each choosing its number of clusters by silhouette as `discover` does: TF-IDF
vectors (word and character n-grams, the practitioner's choice and discover's default), base model embeddings, and
embeddings with the adapter on. Each is scored against the true intents of the unsure messages: adjusted Rand
index, V-measure, and how many held-out intents are found (a cluster whose majority they are, holding at least half
of their unsure messages). Then a simulated user accepts the clusters `discover` shows by default (ACCEPTED_VIEW)
whose majority is a held-out intent, keeps
only their rows of that intent (the edit), and teaches them (`adapters.discover.teach`): accuracy on the task's
test messages of old intents before and after (forgetting), and of the taught intents after.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from adapters import adapt, load_base
from adapters.fit import AdaptationWarning
from adapters.specs import LabelCoverageWarning
from adapters.base import device_name
from adapters.clustering import tfidf_vectors
from adapters.discover import DEFAULT_ABSTAIN, cluster, embed, normalise, propose_labels, teach
from prompts import Example, TaskNotFoundError, suite
from train.run_info import write_results

# (task, intents held out, examples per known intent, stream messages, test messages): sized for ~10-15 minutes on
# the embedded model with 2 CPU cores.
TASKS = {"service-intent-petshop": (3, 8, 180, 100), "real-service-intent-bank": (5, 4, 200, 150)}
# The clusters the simulated user is shown: discover's default vectors (TF-IDF since 2026-12-08; the base model's
# embeddings before, in the results of 2026-12-07/08).
ACCEPTED_VIEW = "tfidf"
VIEWS = ("tfidf", "base_embeddings", "adapter_embeddings")
MIN_FOUND_COVERAGE = 0.5  # a held-out intent is found when one cluster of its majority holds half its messages


def split(task, n_hold: int, k: int, n_stream: int, seed: int = 0):
    """(held-out intents, support set of the others, stream of every intent) from the task's training examples."""
    rng = random.Random(f"discovery:{seed}:{task.name}")
    held = sorted(rng.sample(task.spec.labels, n_hold))
    pool = rng.sample(task.examples("train"), len(task.examples("train")))
    taken: Counter[str] = Counter()
    support, rest = [], []
    for example in pool:
        if example.output not in held and taken[example.output] < k:
            taken[example.output] += 1
            support.append(example)
        else:
            rest.append(example)
    return held, support, rest[:n_stream]


def quality(assignment: Sequence[int], truth: Sequence[str], held: Sequence[str]) -> dict:
    """ARI, V-measure, and which held-out intents a cluster found (majority, holding >= half their messages)."""
    from sklearn.metrics import adjusted_rand_score, v_measure_score

    found = []
    for intent in held:
        total = truth.count(intent)
        for group in set(assignment):
            members = [t for a, t in zip(assignment, truth) if a == group]
            top, count = Counter(members).most_common(1)[0]
            if top == intent and total and count / total >= MIN_FOUND_COVERAGE:
                found.append(intent)
                break
    return {
        "ari": round(adjusted_rand_score(truth, assignment), 4),
        "v_measure": round(v_measure_score(truth, assignment), 4),
        "n_clusters": len(set(assignment)),
        "held_out_found": found,
    }


def run_task(
    base,
    name: str,
    n_hold: int,
    k: int,
    n_stream: int,
    n_test: int,
    *,
    abstain_below: float,
    max_clusters: int,
    init: str | None = "default",
    seed: int = 0,
) -> dict:
    task = suite.get_task(name)
    held, support, stream = split(task, n_hold, k, n_stream, seed)
    known = [label for label in task.spec.labels if label not in held]
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (AdaptationWarning, LabelCoverageWarning))
        adapter = adapt(base, support, instruction=task.spec.instruction, labels=known, init=init, seed=seed)
    texts = [e.input for e in stream]
    truth = [e.output for e in stream]
    confidences = [p.confidence for p in adapter.predict(texts)]
    unsure = [i for i, c in enumerate(confidences) if c < abstain_below]
    unsure_texts, unsure_truth = [texts[i] for i in unsure], [truth[i] for i in unsure]
    is_new = [t in held for t in truth]
    from sklearn.metrics import roc_auc_score

    out: dict[str, Any] = {
        "task": name,
        "seed": seed,
        "held_out_intents": held,
        "k_per_known_intent": k,
        "n_support": len(support),
        "n_stream": len(stream),
        "abstain_below": abstain_below,
        "n_unsure": len(unsure),
        "held_out_in_stream": sum(is_new),
        "held_out_in_unsure": sum(is_new[i] for i in unsure),
        "known_in_unsure": sum(not is_new[i] for i in unsure),
        "auroc_low_confidence_is_new": round(roc_auc_score(is_new, [-c for c in confidences]), 4),
        "intents_in_unsure": len(set(unsure_truth)),
        "seconds_adapt_and_score": round(time.perf_counter() - started),
    }
    if len(unsure) < 4:
        out["note"] = "fewer than 4 unsure messages: nothing to cluster"
        return out
    views = {
        "tfidf": tfidf_vectors(unsure_texts),
        "base_embeddings": normalise(embed(base, unsure_texts)),
        "adapter_embeddings": normalise(embed(base, unsure_texts, adapter=adapter)),
    }
    clusterings = {}
    for view, vectors in views.items():
        assignment, method, _ = cluster(vectors, max_clusters=max_clusters)
        clusterings[view] = assignment
        out[view] = {"method": method, **quality(assignment, unsure_truth, held)}
        # The same vectors cut at the true number of intents: the representation apart from choosing k.
        from sklearn.cluster import KMeans

        oracle = KMeans(out["intents_in_unsure"], n_init=4, random_state=0).fit_predict(vectors)
        out[view]["at_true_k"] = quality(list(oracle), unsure_truth, held)
    out["teach"] = teach_found(
        base, adapter, task, held, known, unsure_texts, unsure_truth, clusterings, texts, n_test, abstain_below, seed
    )
    out["seconds"] = round(time.perf_counter() - started)
    return out


def teach_found(
    base, adapter, task, held, known, unsure_texts, unsure_truth, clusterings, texts, n_test, abstain_below, seed=0
) -> dict:
    """The simulated user: accept the clusters discover shows by default whose majority is a held-out intent, keep
    only that intent's rows under the proposed name, and teach them."""
    assignment = clusterings[ACCEPTED_VIEW]
    groups = sorted(set(assignment))
    members = {g: [i for i, a in enumerate(assignment) if a == g] for g in groups}
    names = propose_labels(base, [[unsure_texts[i] for i in members[g]][:5] for g in groups], taken=set(known))
    accepted: dict[str, str] = {}  # true intent -> the proposed name it is taught as
    for g, name in zip(groups, names):
        top = Counter(unsure_truth[i] for i in members[g]).most_common(1)[0][0]
        if top in held:
            accepted.setdefault(top, name)
    proposals = [
        {
            "cluster": int(g),
            "proposed": name,
            "majority": Counter(unsure_truth[i] for i in members[g]).most_common(1)[0][0],
            "size": len(members[g]),
        }
        for g, name in zip(groups, names)
    ]
    examples = [
        Example(text, accepted[intent]) for text, intent in zip(unsure_texts, unsure_truth) if intent in accepted
    ]
    result: dict[str, Any] = {"proposals": proposals, "accepted": accepted, "n_examples": len(examples)}
    if len(examples) < 2:
        result["note"] = "fewer than 2 accepted examples: nothing taught"
        return result
    test = [
        Example(e.input, accepted.get(e.output, e.output))
        for e in task.examples("test")[:n_test]
        if e.output in known or e.output in accepted
    ]
    started = time.perf_counter()
    report = teach(adapter, examples, traffic=texts, test=test, abstain_below=abstain_below, seed=seed)
    result.update(report, seconds=round(time.perf_counter() - started))
    result["labels"] = len(report["labels"])
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--abstain-below", type=float, default=DEFAULT_ABSTAIN)
    parser.add_argument("--max-clusters", type=int, default=8)
    parser.add_argument("--init", default="default", help="init to adapt from (none: PEFT's standard init)")
    parser.add_argument("--seeds", type=int, default=1, help="splits per task (held-out intents, support, stream)")
    parser.add_argument("--model", help="base model (default: the embedded one)")
    parser.add_argument("--out", default=str(Path.home() / "shoplora-runs" / "discovery.json"))
    args = parser.parse_args(argv)

    import torch

    torch.manual_seed(0)
    base = load_base(args.model)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "model": base.model_id,
        "init": args.init,
        "device": device_name(base.device),
        "tasks": {},
        "summary": {},
        "skipped": {},
    }
    for name in args.tasks.split(","):
        try:
            suite.get_task(name).examples("train")
        except (TaskNotFoundError, OSError) as error:
            results["skipped"][name] = f"its data is not here ({error})"
            print(f"skipped {name}: {results['skipped'][name]}", flush=True)
            continue
        runs = []
        for seed in range(args.seeds):
            runs.append(
                run_task(
                    base,
                    name,
                    *TASKS.get(name, (3, 8, 180, 100)),
                    abstain_below=args.abstain_below,
                    max_clusters=args.max_clusters,
                    init=None if args.init == "none" else args.init,
                    seed=seed,
                )
            )
            print(json.dumps(runs[-1], indent=1), flush=True)
        results["tasks"][name] = runs
        results["summary"][name] = summary(runs)
    write_results(args.out, results)


def summary(runs: Sequence[dict]) -> dict:
    """Means over a task's splits of what decides the issue's targets: forgetting, new-intent accuracy, ARI."""
    taught = [r["teach"] for r in runs if "test" in r.get("teach", {})]

    def mean(values: Sequence[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "splits": len(runs),
        "splits_taught": len(taught),
        "forgetting_points": mean([t["forgetting_points"] for t in taught]),
        "forgetting_points_each": [t["forgetting_points"] for t in taught],
        "new_intents_accuracy": mean([t["test"]["new_labels"]["accuracy"] for t in taught]),
        "ari": {view: mean([r[view]["ari"] for r in runs if view in r]) for view in VIEWS},
    }


if __name__ == "__main__":
    main()
