"""New-need discovery: the messages an adapter is unsure about, grouped into clusters, each with a proposed label.

    from adapters import discover
    found = discover(adapter, texts, abstain_below=0.5)     # or discover(base, texts): every message is a candidate
    for cluster in found.clusters: print(cluster.label, cluster.size, cluster.typical[:3])
    found.proposals()                                       # editable rows {"input", "output", ...} to teach with

How: the adapter scores every message; those below `abstain_below` confidence (the threshold `predict` abstains
at) become vectors: TF-IDF word and character n-grams by default, or (`embed_with="base"`) the mean of the base
model's last hidden states over the message's tokens with every adapter switched off, or with the adapter on
(`"adapter"`). TF-IDF is the default because it clustered intents better than the model's embeddings on every
task measured (train/cluster_choice.py, train/discovery.py; docs/discovery.md). Then scikit-learn's KMeans and Ward
clustering are tried for 2..max_clusters clusters and the candidate with the best silhouette is kept. The base
model names each cluster from its most typical messages (greedy, a few tokens), turned into a valid, unused label.
Here: `discover` and `teach`; the embedding and clustering are in adapters/clustering.py, the names in
adapters/label_names.py, traffic files and timelines in adapters/traffic.py.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from prompts import ShopLoRAError

from .adapter import Adapter, as_texts
from .base import Base
from .clustering import MAX_CLUSTERS, cluster, embed, normalise, tfidf_vectors
from .label_names import grounded, keywords, propose_labels, slug, unique
from .traffic import check_traffic, load_traffic, parse_time, parse_times, timeline

__all__ = [  # what adapters.discover has always offered, wherever it lives now
    "DEFAULT_ABSTAIN",
    "MAX_CLUSTERS",
    "Cluster",
    "Discovery",
    "check_traffic",
    "cluster",
    "discover",
    "embed",
    "grounded",
    "keywords",
    "load_traffic",
    "normalise",
    "parse_time",
    "propose_labels",
    "slug",
    "teach",
    "tfidf_vectors",
    "timeline",
    "unique",
]

# What the unsure messages can be clustered as (discover's `embed_with`) -> how Discovery.embedding names it.
EMBEDDINGS = {
    "tfidf": "TF-IDF of word 1-2 and character 2-5 grams",
    "base": "base model, mean of last hidden states",
    "adapter": "adapter model, mean of last hidden states",
}
DEFAULT_ABSTAIN = 0.5  # confidence below which a message counts as unsure (predict's abstain_below)
TYPICAL = 5  # messages shown per cluster, nearest its centre first


@dataclass
class Cluster:
    """One group of unsure messages. `members` index the texts given to `discover`; `typical` are the members
    nearest the cluster's centre; `adapter_guess` is the label the adapter most often gave them (None for a base)."""

    label: str
    size: int
    share: float  # of the unsure messages
    typical: list[str]
    members: list[int]
    adapter_guess: str | None = None
    mean_confidence: float | None = None
    timeline: list[dict] = field(default_factory=list)  # [{"period", "size", "share" of all traffic then}]


@dataclass
class Discovery:
    """What `discover` found: the clusters (largest first) and how they were chosen."""

    clusters: list[Cluster]
    texts: list[str]
    n_unsure: int
    abstain_below: float | None
    method: str  # e.g. "kmeans, 4 clusters"
    silhouettes: dict[str, float]  # every candidate tried -> its silhouette
    embedding: str

    @property
    def n_messages(self) -> int:
        return len(self.texts)

    def summary(self) -> dict:
        """Everything but the member texts, for printing as JSON."""
        return {
            "n_messages": self.n_messages,
            "n_unsure": self.n_unsure,
            "abstain_below": self.abstain_below,
            "method": self.method,
            "embedding": self.embedding,
            "silhouettes": self.silhouettes,
            "clusters": [{k: v for k, v in asdict(c).items() if k != "members"} for c in self.clusters],
        }

    def proposals(self) -> list[dict]:
        """One editable training example per unsure message: `output` is its cluster's proposed label. Edit the
        labels, delete the rows that do not belong, and teach the rest (`shoplora discover --teach`)."""
        rows = []
        for number, group in enumerate(self.clusters):
            for rank, index in enumerate(group.members):
                rows.append(
                    {
                        "input": self.texts[index],
                        "output": group.label,
                        "cluster": number,
                        "cluster_size": group.size,
                        "rank": rank,
                        "adapter_guess": group.adapter_guess,
                    }
                )
        return rows


def discover(
    model: Adapter | Base,
    texts: Sequence[str],
    *,
    timestamps: Sequence[Any] | None = None,
    abstain_below: float = DEFAULT_ABSTAIN,
    max_clusters: int = MAX_CLUSTERS,
    typical: int = TYPICAL,
    embed_with: str = "tfidf",
    name_clusters: bool = True,
    seed: int = 0,
    batch_size: int = 16,
) -> Discovery:
    """Cluster the messages `model` (a classify `Adapter`) is unsure about; with a `Base`, cluster every message.
    `timestamps` (ISO 8601 texts or Unix seconds, one per text) add each cluster's size and share over time."""
    texts = as_texts(texts)
    if embed_with not in EMBEDDINGS:
        raise ShopLoRAError(f"embed_with is one of {', '.join(map(repr, EMBEDDINGS))}, got {embed_with!r}")
    if not 2 <= max_clusters <= 64:
        raise ShopLoRAError(f"max_clusters must be between 2 and 64, got {max_clusters}")
    check_traffic(texts)
    times = parse_times(timestamps, len(texts)) if timestamps is not None else None
    adapter = model if isinstance(model, Adapter) else None
    base = adapter.base if adapter else model
    if adapter is not None and adapter.spec.kind != "classify":
        raise ShopLoRAError(
            f"discovery needs a classify adapter (labels to be unsure about); this one is {adapter.spec.kind}"
        )
    if embed_with == "adapter" and adapter is None:
        raise ShopLoRAError("embed_with='adapter' needs an adapter, not a base model")
    guesses: list[str | None] = [None] * len(texts)
    confidences: list[float | None] = [None] * len(texts)
    if adapter is not None:
        predictions = adapter.predict(texts, batch_size=batch_size)
        guesses = [p.best_label for p in predictions]
        confidences = [p.confidence for p in predictions]
        unsure = [i for i, c in enumerate(confidences) if c < abstain_below]
        if not unsure:
            lowest = min(confidences)
            raise ShopLoRAError(
                f"the adapter is sure about all {len(texts)} messages (lowest confidence "
                f"{lowest:.3f}, threshold {abstain_below}): nothing new to discover; to look at its "
                f"least sure messages anyway, raise the threshold above {lowest:.3f}"
            )
    else:
        unsure = list(range(len(texts)))
    unsure_texts = [texts[i] for i in unsure]
    if embed_with == "tfidf":
        vectors = tfidf_vectors(unsure_texts)
    else:
        on = adapter if embed_with == "adapter" else None
        vectors = normalise(embed(base, unsure_texts, adapter=on, batch_size=batch_size))
    assignment, method, silhouettes = cluster(vectors, max_clusters=max_clusters, seed=seed)
    clusters = _clusters(vectors, assignment, unsure, texts, guesses, confidences, typical)
    if name_clusters:
        taken = set(adapter.spec.labels) if adapter else set()
        names = propose_labels(base, [c.typical for c in clusters], taken=taken)
    else:
        names = [f"new_need_{number + 1}" for number in range(len(clusters))]
    for c, name in zip(clusters, names):
        c.label = name
        if times is not None:
            c.timeline = timeline([times[i] for i in c.members], times)
    return Discovery(
        clusters,
        texts,
        len(unsure),
        abstain_below if adapter else None,
        method,
        silhouettes,
        EMBEDDINGS[embed_with],
    )


def _clusters(
    vectors: Any,
    assignment: Sequence[int],
    unsure: Sequence[int],
    texts: Sequence[str],
    guesses: Sequence[str | None],
    confidences: Sequence[float | None],
    typical: int,
) -> list[Cluster]:
    import numpy as np

    found = []
    for group in sorted(set(assignment)):
        rows = [r for r, g in enumerate(assignment) if g == group]
        centre = vectors[rows].mean(0)
        rows.sort(key=lambda r: float(np.linalg.norm(vectors[r] - centre)))
        members = [unsure[r] for r in rows]
        known = [guesses[i] for i in members if guesses[i] is not None]
        sure = [confidences[i] for i in members if confidences[i] is not None]
        found.append(
            Cluster(
                label="",
                size=len(members),
                share=round(len(members) / len(unsure), 4),
                typical=_distinct([texts[i] for i in members])[:typical],
                members=members,
                adapter_guess=Counter(known).most_common(1)[0][0] if known else None,
                mean_confidence=round(sum(sure) / len(sure), 4) if sure else None,
            )
        )
    return sorted(found, key=lambda c: -c.size)


def _distinct(texts: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(texts))


# -- teaching what was found ---------------------------------------------------------------------------------------
MAX_KEPT_CHECK = 200  # confident traffic answers re-scored after teaching, to see that old labels stay put


def teach(
    adapter: Adapter,
    examples: Any,
    *,
    traffic: Sequence[str] = (),
    test: Any = None,
    abstain_below: float = DEFAULT_ABSTAIN,
    seed: int = 0,
    progress: Any = None,
) -> dict:
    """Update `adapter` with the accepted examples (new labels join its label set; earlier examples are replayed)
    and measure what it did: accuracy on a stratified fifth of the examples held out from training (16 or more),
    old vs new labels; how many of the adapter's confident answers on `traffic` stayed the same; and with `test`
    (labelled examples) accuracy before and after on old and new labels. Returns the report as a dict."""
    import random

    from prompts import load_examples

    from .recipe import held_out_split

    examples = load_examples(examples)
    old = set(adapter.spec.labels)
    new_labels = sorted({e.output for e in examples} - old)
    tests = load_examples(test) if test is not None else []
    held_out, train = held_out_split(examples, random.Random(seed), classify=True)
    sure = []
    if traffic:  # a sample: scoring a month of traffic twice would take longer than teaching
        sample = random.Random(seed).sample(list(traffic), min(len(traffic), 3 * MAX_KEPT_CHECK))
        sure = [(text, p.label) for text, p in zip(sample, adapter.predict(sample)) if p.confidence >= abstain_below]
        sure = sure[:MAX_KEPT_CHECK]
    before = _accuracy_by_kind(adapter, tests, old) if tests else {}
    adapter.update(train, seed=seed, progress=progress)
    report: dict[str, Any] = {
        "new_labels": new_labels,
        "labels": list(adapter.spec.labels),
        "n_train": len(train),
        "n_held_out": len(held_out),
    }
    if held_out:
        report["held_out"] = _accuracy_by_kind(adapter, held_out, old)
    if sure:
        after = adapter.predict([text for text, _ in sure])
        kept = sum(p.text == label for (_, label), p in zip(sure, after))
        report["old_answers_kept"] = {"share": round(kept / len(sure), 4), "n": len(sure)}
    if tests:
        after = _accuracy_by_kind(adapter, tests, old)
        report["test"] = {kind: {"before": before.get(kind, {}).get("accuracy"), **after[kind]} for kind in after}
    report["forgetting_points"] = forgetting_points(report)
    return report


def _accuracy_by_kind(adapter: Adapter, examples: Sequence[Any], old: set[str]) -> dict:
    """Accuracy on the examples whose label the adapter had before (old_labels) and on the others (new_labels)."""
    out = {}
    for kind, part in (
        ("old_labels", [e for e in examples if e.output in old]),
        ("new_labels", [e for e in examples if e.output not in old]),
    ):
        if part:
            predicted = adapter.predict([e.input for e in part])
            out[kind] = {
                "accuracy": round(sum(p.text == e.output for p, e in zip(predicted, part)) / len(part), 4),
                "n": len(part),
            }
    return out


def forgetting_points(report: dict) -> float | None:
    """Points of old-label accuracy lost (labelled test examples), else of confident old answers that changed."""
    old = report.get("test", {}).get("old_labels")
    if old and old.get("before") is not None:
        return round(100 * (old["before"] - old["accuracy"]), 2)
    kept = report.get("old_answers_kept")
    return round(100 * (1 - kept["share"]), 2) if kept else None
