"""Which rule should choose the number of clusters in new-need discovery: measured on intent tasks that the
discovery evaluation (train.discovery) does not use, so the choice is not tuned to its numbers.

    python -m train.cluster_choice [--trials 60] [--out ~/shoplora-runs/cluster-choice.json]

Each trial draws a small unsure set as discovery sees one: 2 to 6 intents of a task, 2 to 12 training messages each
(unsure sets are small and uneven). Every rule clusters the same vectors (base-model embeddings, as `discover` makes
them, TF-IDF vectors, and both side by side) and is scored against the true intents: adjusted Rand index,
V-measure, and how far its number of clusters is from the true one.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any, Sequence

from adapters.clustering import CHOOSERS, MAX_CLUSTERS, candidates, choose, embed, normalise, tfidf_vectors
from prompts import TaskNotFoundError, suite
from train.run_info import write_results

TASKS = ("service-intent", "real-service-intent-home")  # meta-train intent tasks: not the evaluation's
PER_INTENT = 20  # training messages embedded per intent (the pool trials draw from)


def trial_sets(labels: Sequence[str], pool: dict[str, list[int]], trials: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(trials):
        chosen = rng.sample(sorted(labels), rng.randint(2, min(6, len(labels))))
        out.append([i for label in chosen for i in rng.sample(pool[label], min(len(pool[label]), rng.randint(2, 12)))])
    return out


def cached_embeddings(base: Any, texts: Sequence[str], path: Path) -> Any:
    """The texts' base-model embeddings, kept beside the results: embedding is most of a run's time on a CPU."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = path.with_name(f"{path.stem}-{digest}.npy")
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    raw = embed(base, texts)
    print(f"embedded {len(texts)} messages in {time.perf_counter() - started:.0f} s", flush=True)
    np.save(path, raw)
    return raw


def both(embedded: Any, tfidf: Any) -> Any:
    """Embeddings and TF-IDF side by side, each row of each at length 1, so each counts alike in a distance."""
    import numpy as np

    norms = np.linalg.norm(tfidf, axis=1, keepdims=True)
    return np.hstack([embedded, tfidf / np.where(norms > 0, norms, 1.0)])


def score(assignment: Sequence[int], truth: Sequence[str]) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, v_measure_score

    return {
        "ari": adjusted_rand_score(truth, assignment),
        "v": v_measure_score(truth, assignment),
        "k_error": len(set(assignment)) - len(set(truth)),
    }


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    n = len(rows)
    return {
        "ari": round(sum(r["ari"] for r in rows) / n, 4),
        "v_measure": round(sum(r["v"] for r in rows) / n, 4),
        "mean_k_error": round(sum(r["k_error"] for r in rows) / n, 3),
        "exact_k": round(sum(r["k_error"] == 0 for r in rows) / n, 3),
        "trials": n,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--out", default=str(Path.home() / "shoplora-runs" / "cluster-choice.json"))
    args = parser.parse_args(argv)

    from adapters import load_base

    base = load_base()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "model": base.model_id, "tasks": {}}
    for name in TASKS:
        try:
            examples = suite.get_task(name).examples("train")
        except (TaskNotFoundError, OSError) as error:
            print(f"skipped {name}: its data is not here ({error})", flush=True)
            continue
        by_label: dict[str, list[str]] = {}
        for e in examples:
            if len(by_label.setdefault(e.output, [])) < PER_INTENT and e.input not in by_label[e.output]:
                by_label[e.output].append(e.input)
        texts = [t for ts in by_label.values() for t in ts]
        truth = [label for label, ts in by_label.items() for _ in ts]
        pool: dict[str, list[int]] = {}
        for i, label in enumerate(truth):
            pool.setdefault(label, []).append(i)
        raw = cached_embeddings(base, texts, Path(args.out).expanduser().with_suffix(f".{name}.npy"))
        rows: dict[str, list[dict[str, float]]] = {}
        for members in trial_sets(list(by_label), pool, args.trials, seed=0):
            subset_truth = [truth[i] for i in members]
            embedded, tfidf = normalise(raw[members]), tfidf_vectors([texts[i] for i in members])
            views = {"base_embeddings": embedded, "tfidf": tfidf, "both": both(embedded, tfidf)}
            for view, vectors in views.items():
                dense, found = candidates(vectors, max_clusters=MAX_CLUSTERS)  # once for every rule
                for rule in CHOOSERS:
                    assignment = [0] * len(dense) if isinstance(found, str) else choose(dense, found, rule)[0]
                    rows.setdefault(f"{view} / {rule}", []).append(score(assignment, subset_truth))
        results["tasks"][name] = {key: summarise(value) for key, value in rows.items()}
        print(json.dumps(results["tasks"][name], indent=1), flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
