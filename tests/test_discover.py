"""New-need discovery on the tiny model: discover(), `shoplora discover` (proposals, --teach) and its bad inputs,
and the lab's Discover tab functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from adapters import AdapterStore, adapt, discover
from adapters.discover import cluster, grounded, keywords, load_traffic, parse_time, slug, timeline, unique
from prompts import ShopLoRAError, suite
from shoplora.cli import main

TASK = suite.get_task("service-intent-petshop")
KNOWN = TASK.spec.labels[:3]
TRAIN = [e for e in TASK.examples("train") if e.output in KNOWN][:12]
TRAFFIC = [e.input for e in TASK.examples("test")[:16]]
EVERYONE = 1.01  # a threshold above any confidence: every message is unsure (the tiny model is sure of anything)


def discover_args(traffic: Path, out: Path, *options: str) -> list[str]:
    """`shoplora discover` of the stored adapter 'pets' on the messages in `traffic`, its proposals written to `out`."""
    return ["discover", "pets", str(traffic), "--out", str(out), *options]


# base, one a module: tests/conftest.py
@pytest.fixture(scope="module")
def adapter(base):
    return adapt(base, TRAIN, instruction=TASK.spec.instruction, labels=KNOWN, init=None, steps=2)


@pytest.fixture(scope="module")
def stored(adapter, tmp_path_factory):
    """A store holding the adapter as 'pets' and a traffic file with a timestamp a row."""
    root = tmp_path_factory.mktemp("discover")
    AdapterStore(root / "store").save(adapter, "pets")
    traffic = root / "traffic.jsonl"
    traffic.write_text(
        "".join(
            json.dumps({"input": text, "timestamp": f"2026-12-0{1 + i % 3}T10:00:00Z"}) + "\n"
            for i, text in enumerate(TRAFFIC)
        )
    )
    return root


def test_discover_groups_every_unsure_message_with_valid_new_labels(adapter):
    times = [f"2026-12-0{1 + i % 3}T10:00:00Z" for i in range(len(TRAFFIC))]
    found = discover(adapter, TRAFFIC, timestamps=times, abstain_below=EVERYONE, max_clusters=4)
    assert found.n_unsure == len(TRAFFIC) and found.n_messages == len(TRAFFIC)
    members = sorted(i for c in found.clusters for i in c.members)
    assert members == list(range(len(TRAFFIC)))  # each unsure message in exactly one cluster
    assert [c.size for c in found.clusters] == sorted((c.size for c in found.clusters), reverse=True)
    assert 2 <= len(found.clusters) <= 4 and found.method in found.silhouettes
    labels = [c.label for c in found.clusters]
    assert len(set(labels)) == len(labels) and not set(labels) & {*KNOWN, "abstain"}
    assert all(label == slug(label) and label for label in labels)
    for c in found.clusters:
        assert c.typical[0] == TRAFFIC[c.members[0]] and set(c.typical) <= {TRAFFIC[i] for i in c.members}
        assert c.adapter_guess in KNOWN and [row["period"] for row in c.timeline] == [
            "2026-12-01",
            "2026-12-02",
            "2026-12-03",
        ]
        assert sum(row["size"] for row in c.timeline) == c.size
    rows = found.proposals()
    assert len(rows) == len(TRAFFIC) and {r["output"] for r in rows} == set(labels)


def test_only_unsure_messages_are_clustered_and_a_base_clusters_all(adapter, base):
    confidences = [p.confidence for p in adapter.predict(TRAFFIC)]
    threshold = sorted(confidences)[len(confidences) // 2] + 1e-9
    found = discover(adapter, TRAFFIC, abstain_below=threshold, name_clusters=False)
    assert {i for c in found.clusters for i in c.members} == {i for i, c in enumerate(confidences) if c < threshold}
    everything = discover(base, TRAFFIC[:6], name_clusters=False)
    assert everything.n_unsure == 6 and everything.abstain_below is None
    assert all(c.adapter_guess is None for c in everything.clusters)


@pytest.mark.parametrize("embed_with", ["tfidf", "base", "adapter"])
def test_each_kind_of_vector_groups_every_unsure_message(adapter, embed_with):
    found = discover(adapter, TRAFFIC, abstain_below=EVERYONE, embed_with=embed_with, name_clusters=False)
    assert sorted(i for c in found.clusters for i in c.members) == list(range(len(TRAFFIC)))
    assert found.embedding.startswith({"tfidf": "TF-IDF", "base": "base model", "adapter": "adapter model"}[embed_with])
    assert discover(adapter, TRAFFIC[:4], abstain_below=EVERYONE, name_clusters=False).embedding.startswith("TF-IDF")
    with pytest.raises(ShopLoRAError, match="embed_with is one of"):
        discover(adapter, TRAFFIC, embed_with="bert")


def test_tfidf_vectors_of_messages_without_words_are_still_vectors():
    from adapters.discover import tfidf_vectors

    vectors = tfidf_vectors(["?", "!", "?"])  # no word of two letters: only the character part has terms
    assert vectors.shape[0] == 3 and (vectors[0] == vectors[2]).all() and not (vectors[0] == vectors[1]).all()


def test_discovery_refuses_what_it_cannot_group(adapter, monkeypatch):
    with pytest.raises(ShopLoRAError, match="a single message"):
        discover(adapter, ["only one"])
    with pytest.raises(ShopLoRAError, match="no messages"):
        discover(adapter, [])
    with pytest.raises(ShopLoRAError, match="sure about all 4 messages"):
        discover(adapter, TRAFFIC[:4], abstain_below=0.05)  # 3 labels: every confidence is above a third
    with pytest.raises(ShopLoRAError, match="2 timestamps for 4 messages"):
        discover(adapter, TRAFFIC[:4], timestamps=["2026-12-01", "2026-12-02"], abstain_below=EVERYONE)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # not installed
    with pytest.raises(ShopLoRAError, match="pip install scikit-learn"):
        discover(adapter, TRAFFIC[:6], abstain_below=EVERYONE)


def test_clustering_picks_the_split_with_the_best_silhouette():
    import numpy as np

    rng = np.random.default_rng(0)
    centres = np.eye(3) * 10
    points = np.concatenate([centre + rng.normal(size=(6, 3)) * 0.1 for centre in centres])
    assignment, method, scores = cluster(points, max_clusters=5)
    assert method.endswith("3 clusters") and scores[method] == max(scores.values())
    assert len(set(assignment[:6])) == len(set(assignment[6:12])) == 1 and len(set(assignment)) == 3
    assert cluster(points[:3], max_clusters=5)[0] == [0, 0, 0]  # too few to split


# Calinski-Harabasz is left out: on groups this tight it keeps splitting them (its ratio still grows).
@pytest.mark.parametrize("rule", ["silhouette", "davies_bouldin", "hdbscan"])
def test_every_rule_finds_well_separated_groups_and_a_stray_point_stays_apart(rule):
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(1)
    points = np.concatenate([centre + rng.normal(size=(5, 3)) * 0.1 for centre in np.eye(3) * 10])
    truth = [0] * 5 + [1] * 5 + [2] * 5
    assignment, method, _ = cluster(points, max_clusters=6, choose_by=rule)
    assert adjusted_rand_score(truth, assignment) == 1.0, method
    if rule == "hdbscan":  # noise is no cluster: a far-off message gets one of its own, not a group's label
        stray = cluster(np.vstack([points, [[-50.0, -50.0, -50.0]]]), choose_by=rule)[0]
        assert stray[-1] not in stray[:-1]
    with pytest.raises(ValueError, match="choose_by must be one of"):
        cluster(points, choose_by="elbow")


def test_an_embedding_does_not_depend_on_its_batch(base):
    import numpy as np

    from adapters.discover import embed

    texts = ["hi", "where is my parcel, it has been two weeks", "ok"]  # padded to the longest in a batch
    together = embed(base, texts, batch_size=3)
    alone = np.concatenate([embed(base, [text]) for text in texts])
    assert np.abs(together - alone).max() < 1e-4


def test_label_names_and_timelines():
    assert slug("Intent name: Gift Wrapping!\nsecond line") == "gift_wrapping"
    assert slug("  \n") == "" and len(slug("word " * 30)) <= 40
    assert unique("refund", {"refund", "refund_2"}) == "refund_3"
    kittens = ["any kittens for adoption?", "do you sell kittens", "kittens from a shelter"]
    bags = ["the bag arrived torn", "torn bag of seed"]
    assert grounded("kitten_adoption", kittens) and not grounded("i_m_sorry_for_the", kittens)
    assert not grounded("track_order", ["where is my order? track it"])  # a worked example's answer, copied
    assert keywords(kittens, [kittens, bags]).startswith("kittens_") and keywords(bags, [kittens, bags]).startswith(
        ("bag_torn", "torn_bag")
    )
    assert parse_time(0, "t").isoformat() == "1970-01-01T00:00:00+00:00"
    with pytest.raises(ShopLoRAError, match="not a time"):
        parse_time("yesterday", "row 3")
    hours = [parse_time(f"2026-12-01T0{h}:10:00", "t") for h in (1, 1, 2)]
    assert timeline(hours[:1], hours) == [
        {"period": "2026-12-01 01:00", "size": 1, "share": 0.5},
        {"period": "2026-12-01 02:00", "size": 0, "share": 0.0},
    ]


def test_cli_writes_proposals_and_teach_adds_the_label(stored, tiny_model_dir, capsys):
    store, out = stored / "store", stored / "proposals.jsonl"
    common = ["--store", str(store), "--model", str(tiny_model_dir)]
    traffic = stored / "traffic.jsonl"
    assert main(discover_args(traffic, out, "--abstain-below", str(EVERYONE), "--max-clusters", "3", *common)) == 0
    printed = capsys.readouterr().out
    assert f"{len(TRAFFIC)} messages, {len(TRAFFIC)} unsure" in printed and "--teach" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(TRAFFIC) and {"input", "output", "cluster"} <= set(rows[0])
    assert main(discover_args(traffic, out, *common)) == 2
    assert "exists" in capsys.readouterr().err  # the user's edits are never overwritten silently
    # The user keeps the first cluster under a name of their own and gives the rest existing labels.
    edited = stored / "edited.jsonl"
    edited.write_text(
        "".join(
            json.dumps({"input": r["input"], "output": "gift_wrapping" if r["cluster"] == 0 else KNOWN[i % 3]}) + "\n"
            for i, r in enumerate(rows)
        )
    )
    test = stored / "test.jsonl"
    test.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in TRAIN[:4]))
    assert main(["discover", "pets", str(traffic), "--teach", str(edited), "--test", str(test), *common]) == 0
    report = json.loads(capsys.readouterr().out.split("\nsaved ")[0])
    assert report["new_labels"] == ["gift_wrapping"] and report["test"]["old_labels"]["n"] == 4
    assert report["forgetting_points"] is not None and report["n_train"] + report["n_held_out"] == len(rows)
    record = AdapterStore(store).read("pets").record
    assert "gift_wrapping" in record.spec.labels and set(KNOWN) <= set(record.spec.labels)


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"", "is empty"),
        (b"\n  \n", "is empty"),
        (b'{"input": "caf\xe9"}\n', "is not UTF-8"),
        (b'{"input": "is there a puppy discount?"}\n', "a single message"),
        (b'{"input": "a"}\n{"note": "b"}\n', "line 2: no message"),
        (b'{"input": "a", "timestamp": "2026-12-01"}\n{"input": "b"}\n', "message 2 has no timestamp"),
    ],
    ids=["empty", "blank", "not-utf8", "one-message", "no-text", "missing-time"],
)
def test_cli_bad_traffic_is_one_line_and_writes_nothing(content, problem, stored, tmp_path, monkeypatch, capsys):
    import adapters

    monkeypatch.setattr(adapters, "load_base", lambda *a, **k: pytest.fail("loaded the model for a bad file"))
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_bytes(content)
    assert main(discover_args(traffic, tmp_path / "p.jsonl", "--store", str(stored / "store"))) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "p.jsonl").exists()


def test_cli_no_unsure_message_is_one_line(stored, tiny_model_dir, tmp_path, capsys):
    common = ["--store", str(stored / "store"), "--model", str(tiny_model_dir)]
    assert main(discover_args(stored / "traffic.jsonl", tmp_path / "p.jsonl", "--abstain-below", "0.05", *common)) == 2
    err = capsys.readouterr().err
    assert "nothing new to discover" in err and err.endswith("\n") and err.count("error:") == 1
    assert "Traceback" not in err  # the model's loading bar comes first; the error is its one last line
    assert not (tmp_path / "p.jsonl").exists()


def test_load_traffic_reads_csv_with_other_column_names(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("message,created_at\nhi there,1764581400\nhello,1764585000\n")
    texts, times = load_traffic(path)
    assert texts == ["hi there", "hello"] and times[0].year == 2025


def test_lab_discover_tab_finds_and_teaches(base, adapter, tmp_path):
    import shutil

    from serve.app import build_app
    from serve.discover_tab import accepted_examples, find, teach_accepted
    from serve.engine import Engine
    from serve.uploads import upload_folder

    store = AdapterStore(tmp_path / "store")
    store.save(adapter, "pets")
    engine = Engine(base, store, meta_init=None, max_new_tokens=8)
    try:
        assert build_app(engine) is not None  # the tab builds inside the lab
        upload = upload_folder() / "discover-test" / "traffic.jsonl"
        upload.parent.mkdir(parents=True, exist_ok=True)
        upload.write_text("".join(json.dumps({"input": text}) + "\n" for text in TRAFFIC))
        try:
            markdown, rows, choices, texts = find(engine, "pets", str(upload), EVERYONE)
        finally:
            shutil.rmtree(upload.parent, ignore_errors=True)
        assert f"{len(TRAFFIC)} of {len(TRAFFIC)} messages unsure" in markdown and len(rows) == len(TRAFFIC)
        rows = [[text, "gift_wrapping" if number == 1 else label, number] for text, label, number in rows]
        with pytest.raises(ShopLoRAError, match="tick at least one"):
            accepted_examples(rows, [])
        summary = teach_accepted(engine, "pets", rows, choices, texts)
        assert "`gift_wrapping`" in summary
        assert "gift_wrapping" in engine.describe("pets").labels  # served at once, from the saved folder
    finally:
        engine.close()


def test_cluster_choice_trials_draw_uneven_sets_of_a_few_intents():
    from train.cluster_choice import score, summarise, trial_sets

    pool = {"a": [0, 1, 2], "b": list(range(3, 20)), "c": [20, 21], "d": [22, 23, 24, 25]}
    sets = trial_sets(list(pool), pool, trials=30, seed=0)
    owner = {i: label for label, members in pool.items() for i in members}
    assert len(sets) == 30 and sets == trial_sets(list(pool), pool, trials=30, seed=0)
    for members in sets:
        assert len(members) == len(set(members))  # no message twice
        assert 2 <= len({owner[i] for i in members}) <= 4
    assert len({len(members) for members in sets}) > 3  # sizes vary, as unsure sets do
    perfect, merged = score([0, 0, 1, 1], ["x", "x", "y", "y"]), score([0, 0, 0, 0], ["x", "x", "y", "y"])
    assert perfect["ari"] == 1.0 and perfect["k_error"] == 0 and merged["k_error"] == -1 and merged["ari"] == 0.0
    assert summarise([perfect, merged]) == {
        "ari": 0.5,
        "v_measure": 0.5,
        "mean_k_error": -0.5,
        "exact_k": 0.5,
        "trials": 2,
    }


def test_the_discovery_evaluation_runs_end_to_end_and_summarises_its_splits(tiny_model_dir, tmp_path, monkeypatch):
    from train import discovery

    # A small split of the pet-shop task, so the tiny model adapts and teaches in seconds.
    monkeypatch.setitem(discovery.TASKS, "service-intent-petshop", (3, 2, 24, 12))
    out = tmp_path / "discovery.json"
    args = ["--tasks", "service-intent-petshop", "--init", "none", "--model", str(tiny_model_dir)]
    discovery.main([*args, "--abstain-below", "1.01", "--seeds", "2", "--out", str(out)])
    results = json.loads(out.read_text())
    runs = results["tasks"]["service-intent-petshop"]
    assert [r["seed"] for r in runs] == [0, 1] and runs[0]["held_out_intents"] != runs[1]["held_out_intents"]
    assert all(r["n_unsure"] == r["n_stream"] == 24 for r in runs)  # abstain_below above 1: every message
    summary = results["summary"]["service-intent-petshop"]
    assert summary["splits"] == 2 and set(summary["ari"]) == {"tfidf", "base_embeddings", "adapter_embeddings"}
    taught = [r["teach"]["forgetting_points"] for r in runs if "test" in r["teach"]]
    assert summary["forgetting_points_each"] == taught
