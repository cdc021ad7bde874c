"""Vectors and clustering for new-need discovery (adapters.discover): messages as TF-IDF word and character
n-grams (the default) or as the mean of the model's last hidden states, centred and scaled to length 1, grouped by
whichever of KMeans and Ward clustering with 2..max_clusters clusters has the best silhouette."""

from __future__ import annotations

from typing import Any, Sequence

from .adapter import Adapter
from .base import Base
from .generation import base_only
from .optional import require_sklearn

MAX_CLUSTERS = 8
MIN_TO_SPLIT = 4  # fewer unsure messages than this make one cluster: silhouette needs 2 <= k < n


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


def tfidf_vectors(texts: Sequence[str]) -> Any:
    """TF-IDF of word 1-2 grams and character 2-5 grams (within words), side by side, each part of a row at length
    1: what a practitioner clusters short messages with; it needs no model pass."""
    require_sklearn("discovery (it clusters messages)")
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    parts = []
    for vectorizer in (
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    ):
        try:
            parts.append(vectorizer.fit_transform(texts).toarray())
        except ValueError:  # no term at all (e.g. messages of one character each): this part says nothing
            continue
    return np.hstack(parts) if parts else np.zeros((len(texts), 1))


def normalise(vectors: Any) -> Any:
    """Centred and scaled to length 1: mean-pooled hidden states share a large common direction that would
    otherwise dominate every distance."""
    import numpy as np

    centred = vectors - vectors.mean(0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.where(norms > 0, norms, 1.0)


# Rules that choose among the candidates (train.cluster_choice measures them): the best silhouette, Calinski-Harabasz
# or (lowest) Davies-Bouldin score; "hdbscan" clusters by density instead, with no number of clusters to choose
# (messages it leaves as noise each make a cluster of their own).
CHOOSERS = ("silhouette", "calinski_harabasz", "davies_bouldin", "hdbscan")


def cluster(
    vectors: Any, *, max_clusters: int = MAX_CLUSTERS, seed: int = 0, choose_by: str = "silhouette"
) -> tuple[list[int], str, dict]:
    """(cluster of each row, the method chosen, score of every candidate). Candidates: KMeans and Ward
    agglomerative clustering with 2..max_clusters clusters; the best by `choose_by` (one of CHOOSERS) wins. Dense
    or sparse rows."""
    if choose_by not in CHOOSERS:
        raise ValueError(f"choose_by must be one of {', '.join(CHOOSERS)}, got {choose_by!r}")
    dense, found = candidates(vectors, max_clusters=max_clusters, seed=seed)
    if isinstance(found, str):
        return [0] * len(dense), found, {}
    return choose(dense, found, choose_by)


def candidates(vectors: Any, *, max_clusters: int = MAX_CLUSTERS, seed: int = 0) -> tuple[Any, dict | str]:
    """(the rows as a dense array, {method: cluster of each row}), or a reason instead of the candidates when the
    rows are too few or too alike to split."""
    require_sklearn("discovery (it clusters messages)")
    import numpy as np
    from sklearn.cluster import AgglomerativeClustering, KMeans

    dense = vectors.toarray() if hasattr(vectors, "toarray") else np.asarray(vectors)
    distinct = len(np.unique(dense.round(6), axis=0))
    if len(dense) < MIN_TO_SPLIT or distinct < 3:
        return dense, "one cluster (too few distinct messages to split)"
    found = {}
    for k in range(2, min(max_clusters, distinct - 1) + 1):
        found[f"kmeans, {k} clusters"] = KMeans(k, n_init=4, random_state=seed).fit_predict(dense)
        found[f"ward, {k} clusters"] = AgglomerativeClustering(k, linkage="ward").fit_predict(dense)
    return dense, {name: labels for name, labels in found.items() if len(set(labels)) >= 2}


def choose(dense: Any, found: dict, choose_by: str) -> tuple[list[int], str, dict]:
    """The candidate `choose_by` scores best, as (cluster of each row, its method, every candidate's score)."""
    import numpy as np
    from sklearn import metrics
    from sklearn.cluster import HDBSCAN

    if choose_by == "hdbscan":
        labels = HDBSCAN(min_cluster_size=2, copy=True).fit_predict(dense)
        top = int(labels.max()) + 1
        noise = np.cumsum(labels < 0) - 1 + top  # each noise message its own cluster
        return [int(x) for x in np.where(labels < 0, noise, labels)], "hdbscan", {}
    judge = {
        "silhouette": metrics.silhouette_score,
        "calinski_harabasz": metrics.calinski_harabasz_score,
        "davies_bouldin": lambda x, labels: -metrics.davies_bouldin_score(x, labels),
    }[choose_by]
    scores = {name: round(float(judge(dense, labels)), 4) for name, labels in found.items()}
    if not scores:
        return [0] * len(dense), "one cluster (no split found)", scores
    best = max(scores, key=lambda name: (scores[name], -list(scores).index(name)))  # ties: the earlier candidate
    return [int(x) for x in found[best]], best, scores
