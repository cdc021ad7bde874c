"""New-need discovery: the messages an adapter is unsure about, grouped into clusters, each with a proposed label.

    from adapters import discover
    found = discover(adapter, texts, abstain_below=0.5)     # or discover(base, texts): every message is a candidate
    for cluster in found.clusters: print(cluster.label, cluster.size, cluster.typical[:3])
    found.proposals()                                       # editable rows {"input", "output", ...} to teach with

How: the adapter scores every message; those below `abstain_below` confidence (the threshold `predict` abstains
at) are embedded as the mean of the base model's last hidden states over the message's tokens, with every adapter
switched off. The base's view is kept on purpose: an adapter was trained to pull every message towards one of the
labels it knows, which is what a new need must not be pulled into (train/discovery.py measures both). The vectors
are centred and scaled to length 1, then scikit-learn's KMeans and Ward clustering are tried for 2..max_clusters
clusters and the candidate with the best silhouette is kept. The base model names each cluster from its most
typical messages (greedy, a few tokens), turned into a valid, unused label.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from prompts import DataError, Example, ShopLoRAError, TaskSpec
from prompts.loaders import MAX_CHARS, read_rows

from .adapter import ABSTAIN, Adapter, _texts
from .base import Base
from .generation import base_only, generate
from .optional import require_sklearn

DEFAULT_ABSTAIN = 0.5  # confidence below which a message counts as unsure (predict's abstain_below)
MAX_CLUSTERS = 8
MIN_TO_SPLIT = 4  # fewer unsure messages than this make one cluster: silhouette needs 2 <= k < n
TYPICAL = 5  # messages shown per cluster, nearest its centre first
NAME_TOKENS = 12  # greedy tokens for a proposed label name
LABEL_CHARS = 40
TEXT_KEYS = ("input", "text", "message")
TIME_KEYS = ("timestamp", "time", "created_at")
NAMING = TaskSpec(
    "discover-name",
    "service",
    "generate",
    "You name customer-support intents. Read the customer messages and reply with one short intent name of two or "
    "three words in snake_case, such as track_order or refund_request. Reply with the name only.",
)


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
        for number, cluster in enumerate(self.clusters):
            for rank, index in enumerate(cluster.members):
                rows.append(
                    {
                        "input": self.texts[index],
                        "output": cluster.label,
                        "cluster": number,
                        "cluster_size": cluster.size,
                        "rank": rank,
                        "adapter_guess": cluster.adapter_guess,
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
    embed_with: str = "base",
    name_clusters: bool = True,
    seed: int = 0,
    batch_size: int = 16,
) -> Discovery:
    """Cluster the messages `model` (a classify `Adapter`) is unsure about; with a `Base`, cluster every message.
    `timestamps` (ISO 8601 texts or Unix seconds, one per text) add each cluster's size and share over time."""
    texts = _texts(texts)
    if embed_with not in ("base", "adapter"):
        raise ShopLoRAError(f"embed_with is 'base' or 'adapter', got {embed_with!r}")
    if not 2 <= max_clusters <= 64:
        raise ShopLoRAError(f"max_clusters must be between 2 and 64, got {max_clusters}")
    check_traffic(texts)
    times = _parse_times(timestamps, len(texts)) if timestamps is not None else None
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
        guesses = [p.text for p in predictions]
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
    vectors = normalise(
        embed(base, unsure_texts, adapter=adapter if embed_with == "adapter" else None, batch_size=batch_size)
    )
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
        f"{'adapter' if embed_with == 'adapter' else 'base'} model, mean of last hidden states",
    )


# -- embedding and clustering --------------------------------------------------------------------------------------
def embed(base: Base, texts: Sequence[str], *, adapter: Adapter | None = None, batch_size: int = 16) -> Any:
    """Each text's mean last hidden state (a numpy array, one row a text): the base model alone, or with `adapter`'s
    weights on. Texts beyond the model's context are cut there (an embedding needs no answer room)."""
    import numpy as np
    import torch

    tokenizer = base.tokenizer
    limit = getattr(base.model.config, "max_position_embeddings", None) or 2048
    rows = []
    with base.lock:
        context = base_only(base) if adapter is None else _switched_to(adapter)
        with context, torch.no_grad():
            backbone = base.model.base_model  # the decoder without the LM head: no vocabulary-sized logits
            for start in range(0, len(texts), batch_size):
                # Padding on the right keeps each message at the positions it has alone: its vector does not
                # depend on the batch.
                batch = tokenizer(
                    list(texts[start : start + batch_size]),
                    return_tensors="pt",
                    padding=True,
                    padding_side="right",
                    truncation=True,
                    max_length=limit,
                    add_special_tokens=False,
                ).to(base.device)
                if batch["input_ids"].shape[1] == 0:  # only empty texts: no token to average
                    rows.append(np.zeros((len(batch["input_ids"]), base.model.config.hidden_size), "float32"))
                    continue
                ids, attention = batch["input_ids"], batch["attention_mask"]
                hidden = backbone(input_ids=ids, attention_mask=attention).last_hidden_state
                mask = attention.unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                rows.append(mean.float().cpu().numpy())
    return np.concatenate(rows)


class _switched_to:
    """A context with `adapter`'s weights active (the caller holds the base's lock)."""

    def __init__(self, adapter: Adapter):
        self.adapter = adapter

    def __enter__(self):
        self.adapter.activate()

    def __exit__(self, *exc):
        return False


def normalise(vectors: Any) -> Any:
    """Centred and scaled to length 1: mean-pooled hidden states share a large common direction that would
    otherwise dominate every distance."""
    import numpy as np

    centred = vectors - vectors.mean(0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.where(norms > 0, norms, 1.0)


def cluster(vectors: Any, *, max_clusters: int = MAX_CLUSTERS, seed: int = 0) -> tuple[list[int], str, dict]:
    """(cluster of each row, the method chosen, silhouette of every candidate). Candidates: KMeans and Ward
    agglomerative clustering with 2..max_clusters clusters; the best silhouette wins. Dense or sparse rows."""
    require_sklearn("discovery (it clusters messages)")
    import numpy as np
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.metrics import silhouette_score

    dense = vectors.toarray() if hasattr(vectors, "toarray") else np.asarray(vectors)
    n = len(dense)
    distinct = len(np.unique(dense.round(6), axis=0))
    if n < MIN_TO_SPLIT or distinct < 3:
        return [0] * n, "one cluster (too few distinct messages to split)", {}
    best: tuple[float, str, list[int]] | None = None
    scores: dict[str, float] = {}
    for k in range(2, min(max_clusters, distinct - 1) + 1):
        candidates = {
            "kmeans": KMeans(k, n_init=4, random_state=seed).fit_predict(dense),
            "ward": AgglomerativeClustering(k, linkage="ward").fit_predict(dense),
        }
        for name, labels in candidates.items():
            if len(set(labels)) < 2:
                continue
            score = float(silhouette_score(dense, labels))
            scores[f"{name}, {k} clusters"] = round(score, 4)
            if best is None or score > best[0]:
                best = (score, f"{name}, {k} clusters", [int(x) for x in labels])
    if best is None:
        return [0] * n, "one cluster (no split found)", scores
    return best[2], best[1], scores


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


# -- names ---------------------------------------------------------------------------------------------------------
def propose_labels(base: Base, groups: Sequence[Sequence[str]], *, taken: set[str] = frozenset()) -> list[str]:
    """A label name for each group of messages, written by the base model (no adapter) and made a valid label that
    no other group and none of `taken` uses."""
    answers = generate(
        base, NAMING, [_naming_input(group) for group in groups], shots=NAMING_SHOTS, max_new_tokens=NAME_TOKENS
    )
    used = set(taken) | {ABSTAIN}
    names = []
    for number, (answer, group) in enumerate(zip(answers, groups), start=1):
        name = slug(answer)
        if not grounded(name, group):
            name = keywords(group, groups) or f"new_need_{number}"
        name = unique(name, used)
        used.add(name)
        names.append(name)
    return names


def _naming_input(messages: Sequence[str]) -> str:
    return "Messages:\n" + "\n".join(f"- {text[:200]}" for text in messages)


# Two worked answers in the prompt: a 135M model asked only by the instruction answers like a support agent
# ("i_m_sorry_for_the"); with them it answers with a name.
NAMING_SHOTS = (
    Example(
        _naming_input(
            [
                "where is my parcel? it's been a week",
                "my order still hasn't arrived",
                "can you tell me when my package will come",
            ]
        ),
        "track_order",
    ),
    Example(
        _naming_input(
            [
                "I want my money back for the blender",
                "please refund the shoes I returned",
                "how long does a refund take",
            ]
        ),
        "refund_request",
    ),
)


def grounded(name: str, messages: Sequence[str]) -> bool:
    """Whether a proposed name shares a word (its first 5 letters) with the messages: a name that does not (a shot's
    answer copied, an agent's reply) says nothing about them."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    if not name or name in {shot.output for shot in NAMING_SHOTS}:
        return False
    stems = {word[:5] for word in re.findall(r"[a-z]{3,}", " ".join(messages).lower())}
    return any(word[:5] in stems for word in name.split("_") if len(word) >= 3 and word not in ENGLISH_STOP_WORDS)


def keywords(group: Sequence[str], groups: Sequence[Sequence[str]], n: int = 3) -> str:
    """The words most particular to `group` among `groups` (frequent in it, in few others), as a label."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    def words(messages: Sequence[str]) -> Counter[str]:
        return Counter(
            w for text in messages for w in set(re.findall(r"[a-z]{3,}", text.lower())) if w not in ENGLISH_STOP_WORDS
        )

    mine = words(group)
    spread = Counter(w for other in groups for w in words(other))
    ranked = sorted(mine, key=lambda w: (-mine[w] / spread[w] * mine[w], w))
    return "_".join(ranked[:n])


def slug(text: str) -> str:
    """A generated answer as a label: its first line, lowercase snake_case words, at most LABEL_CHARS characters."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    words = re.findall(r"[a-z0-9]+", line.lower().replace("intent name", " "))
    name = ""
    for word in words[:5]:
        if len(name) + len(word) + 1 > LABEL_CHARS:
            break
        name = f"{name}_{word}" if name else word
    return name


def unique(name: str, used: set[str]) -> str:
    if name not in used:
        return name
    number = 2
    while f"{name}_{number}" in used:
        number += 1
    return f"{name}_{number}"


# -- time ----------------------------------------------------------------------------------------------------------
def _parse_times(values: Sequence[Any], n: int) -> list[datetime]:
    values = list(values)
    if len(values) != n:
        raise ShopLoRAError(f"{len(values)} timestamps for {n} messages: give one per message, or none")
    return [parse_time(value, f"timestamp {number}") for number, value in enumerate(values, start=1)]


def parse_time(value: Any, where: str) -> datetime:
    """An ISO 8601 text ('2026-12-01T09:30:00Z', '2026-12-01') or Unix seconds, as an aware UTC datetime."""
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(float(value), timezone.utc)
        elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):  # Unix seconds from a CSV
            moment = datetime.fromtimestamp(float(value), timezone.utc)
        elif isinstance(value, str) and value.strip():
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        else:
            raise ValueError
    except (ValueError, OverflowError, OSError):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise ShopLoRAError(
            f'{where} is {shown}, not a time: use ISO 8601 (e.g. "2026-12-01T09:30:00Z") or Unix seconds'
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def timeline(members: Sequence[datetime], everything: Sequence[datetime]) -> list[dict]:
    """Per period (an hour under 2 days of traffic, a day under 60, else an ISO week): the cluster's messages and
    their share of all messages then. A need whose share rises is new."""
    span = max(everything) - min(everything)
    fmt = "%Y-%m-%d %H:00" if span.days < 2 else "%Y-%m-%d" if span.days < 60 else "%G-W%V"
    total = Counter(t.astimezone(timezone.utc).strftime(fmt) for t in everything)
    mine = Counter(t.astimezone(timezone.utc).strftime(fmt) for t in members)
    return [
        {"period": period, "size": mine[period], "share": round(mine[period] / total[period], 4)}
        for period in sorted(total)
    ]


# -- traffic files -------------------------------------------------------------------------------------------------
def load_traffic(path: str | Path) -> tuple[list[str], list[Any] | None]:
    """(messages, timestamps or None) of a JSONL/CSV traffic file: a text column (input, text or message) and
    optionally a time column (timestamp, time or created_at) on every row."""
    path = Path(path)
    if path.is_file() and not path.read_bytes().strip():
        raise DataError(
            f"{path} is empty: traffic is one message a line, e.g. "
            '{"input": "do you sell rabbit food?", "timestamp": "2026-12-01T09:30:00Z"}'
        )
    texts, times = [], []
    for place, row in read_rows(path):
        key = next((k for k in TEXT_KEYS if k in row), None)
        if key is None or not isinstance(row[key], str) or not row[key].strip():
            raise DataError(f"{place}: no message; each row needs a non-empty text in one of {', '.join(TEXT_KEYS)}")
        if len(row[key]) > MAX_CHARS:
            raise DataError(f"{place}: the message has {len(row[key])} characters, over {MAX_CHARS}; shorten it")
        texts.append(row[key])
        time_key = next((k for k in TIME_KEYS if k in row and row[k] not in (None, "")), None)
        times.append(parse_time(row[time_key], f"{place}, {time_key}") if time_key else None)
    if not texts:
        raise DataError(f'{path} holds no messages; add rows like {{"input": "..."}}')
    if all(t is None for t in times):
        return texts, None
    if any(t is None for t in times):
        missing = times.index(None) + 1
        raise DataError(f"{path}: message {missing} has no timestamp while others do; give every row one, or none")
    return texts, times


def check_traffic(texts: Sequence[str]) -> None:
    """Refuse traffic too small to group, before any model work."""
    if len(texts) < 2:
        raise ShopLoRAError(
            f"{'no messages' if not texts else 'a single message'} to look at: discovery groups "
            "messages, give at least 2 (e.g. a day of customer messages)"
        )


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
        sure = [(text, p.text) for text, p in zip(sample, adapter.predict(sample)) if p.confidence >= abstain_below]
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
