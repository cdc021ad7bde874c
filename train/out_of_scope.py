"""How well `abstain_below` catches requests no intent covers: CLINC150's out-of-scope messages against the held-out
bank desk's in-scope ones.

    python -m train.out_of_scope [--k 60] [--init default] [--n 200] [--false-alarms 0.05] [--out FILE.json]

An adapter is learned from k in-scope examples (every intent covered; the benchmark's support set for seed 0); its
confidence on in-scope and out-of-scope test messages gives the threshold at which `false_alarms` of in-scope
messages would be handed over, and the share of out-of-scope messages caught there. TF-IDF + logistic regression's
top probability, on the same examples, is the comparison. Needs the real-data folder (see prompts/real.py).
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from pathlib import Path
from typing import Sequence

from adapters import adapt, load_base
from adapters.fit import AdaptationWarning
from adapters.specs import LabelCoverageWarning
from prompts import suite
from prompts.atomic import write_atomic
from prompts.real import clinc_out_of_scope

from .baselines import tfidf_classifier
from .eval_tasks import support_set

TASK = "real-service-intent-bank"


def caught_at(in_scope: Sequence[float], out_of_scope: Sequence[float], false_alarms: float) -> tuple[float, float]:
    """(threshold, share of out-of-scope confidences below it), the threshold being the confidence below which
    `false_alarms` of the in-scope ones fall."""
    ranked = sorted(in_scope)
    threshold = ranked[min(len(ranked) - 1, int(false_alarms * len(ranked)))]
    return threshold, sum(c < threshold for c in out_of_scope) / len(out_of_scope)


def tfidf_confidences(support, texts: Sequence[str]) -> list[float]:
    return tfidf_classifier(support).predict_proba(list(texts)).max(axis=1).tolist()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=60)
    parser.add_argument("--init", default="default")
    parser.add_argument("--n", type=int, default=200, help="test messages of each kind")
    parser.add_argument("--false-alarms", type=float, default=0.05)
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args(argv)

    task = suite.get_task(TASK)
    support = support_set(task, args.k, 0, cover_labels=True)
    in_scope = task.examples("test")[: args.n]
    out_of_scope = random.Random(0).sample(clinc_out_of_scope("test"), args.n)
    base = load_base()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelCoverageWarning)
        warnings.simplefilter("ignore", AdaptationWarning)
        adapter = adapt(base, support, spec=task.spec, init=None if args.init == "none" else args.init)
    seconds = time.perf_counter() - start
    inside = adapter.predict([e.input for e in in_scope])
    outside = adapter.predict(out_of_scope)
    accuracy = sum(p.label == e.output for p, e in zip(inside, in_scope)) / len(in_scope)
    threshold, caught = caught_at([p.confidence for p in inside], [p.confidence for p in outside], args.false_alarms)
    tfidf_in, tfidf_out = (
        tfidf_confidences(support, [e.input for e in in_scope]),
        tfidf_confidences(support, out_of_scope),
    )
    tfidf_threshold, tfidf_caught = caught_at(tfidf_in, tfidf_out, args.false_alarms)
    result = {
        "task": TASK,
        "k": args.k,
        "init": args.init,
        "n_in_scope": len(in_scope),
        "n_out_of_scope": len(out_of_scope),
        "false_alarms": args.false_alarms,
        "adapt": {
            "accuracy": accuracy,
            "abstain_below": threshold,
            "out_of_scope_caught": caught,
            "seconds": round(seconds, 1),
            "steps_run": adapter.record.fit.steps_run,
            "steps_kept": adapter.record.fit.steps_kept,
        },
        "tfidf": {"threshold": tfidf_threshold, "out_of_scope_caught": tfidf_caught},
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_atomic(Path(args.out).expanduser(), json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
