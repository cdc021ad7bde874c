"""The real-data suite (`real-v1`) and the hub task mappings: they load, are sized and split right, and stay offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompts import DataError, ShopLoRAError, TaskNotFoundError, suite
from prompts import real
from prompts.curation import ELLIPSIS, INPUT_WORDS, TEST_CAP, TRAIN_CAP
from prompts.hub import BANKING77_LABELS, ESCI_LABELS, HUB_TASKS, hub_examples, hub_tasks, load_hub_task
from prompts.real import DATA_ENV, data_dir, real_tasks, require_data_dir
from prompts.real_datasets import REAL_DATASETS, UNANSWERABLE

HUB_DATA = Path(__file__).parent / "data" / "hub"
needs_data = pytest.mark.skipif(
    data_dir() is None,
    reason=f"the real datasets folder is absent; set {DATA_ENV} to the folder holding them to run these tests",
)
NAMES = [d.spec.name for d in REAL_DATASETS]


def real_task(name: str) -> suite.Task:
    return next(task for task in real_tasks() if task.name == name)


@needs_data
def test_suite_lists_every_dataset_with_held_out_tasks():
    listed = suite.tasks("real-v1")
    assert [t.name for t in listed] == NAMES
    assert {t.suite for t in listed} == {"real-v1"}
    held_out = {t.name for t in suite.tasks("real-v1", split="held-out")}
    assert {"real-product-match", "real-review-stars"} <= held_out
    assert len(held_out) < len(listed)  # meta-training keeps tasks too
    assert suite.get_task("real-review-qa").suite == "real-v1"


def test_instructions_are_short():
    specs = [d.spec for d in REAL_DATASETS] + [hub.spec for hub in HUB_TASKS.values()]
    assert all(len(spec.instruction.split()) <= 30 for spec in specs), [s.name for s in specs]


@needs_data
@pytest.mark.parametrize("name", NAMES)
def test_task_loads_sized_labelled_and_split(name):
    task = real_task(name)
    train, test = task.examples("train"), task.examples("test")
    assert 1000 <= len(train) <= TRAIN_CAP
    assert len(test) == TEST_CAP
    for example in train + test:
        assert example.input.strip() and example.output.strip()
        # ~150 words of input keeps instruction + input + answer near 256 tokens
        assert len(example.input.split()) <= INPUT_WORDS
    if task.spec.kind == "classify":
        assert {e.output for e in train} == set(task.spec.labels)  # every label is learnable
        assert {e.output for e in test} == set(task.spec.labels)
    inputs = [e.input for e in train + test]
    assert len(set(inputs)) == len(inputs)  # no duplicates, and no input in both parts


@needs_data
@pytest.mark.parametrize("name", ["real-product-attributes", "real-review-qa"])
def test_extract_outputs_are_json_grounded_in_the_input(name):
    for example in real_task(name).examples("train") + real_task(name).examples("test"):
        answer = json.loads(example.output)
        assert isinstance(answer, dict) and answer
        if name == "real-review-qa":
            assert answer["answer"] == UNANSWERABLE or answer["answer"] in example.input
        else:  # the keys are the attributes the input lists, in that order
            listed = example.input.rsplit("Attributes: ", 1)[1].split(", ")
            assert list(answer) == listed


@needs_data
def test_review_qa_keeps_both_answerable_and_unanswerable():
    outputs = [json.loads(e.output)["answer"] for e in real_task("real-review-qa").examples("test")]
    unanswerable = sum(o == UNANSWERABLE for o in outputs)
    assert 0.2 < unanswerable / len(outputs) < 0.8


@needs_data
def test_parts_are_deterministic_and_ignore_the_seed():
    task = real_task("real-product-category")
    first = task.examples("test", seed=0)
    real._parts.cache_clear()
    assert task.examples("test", seed=0) == first
    assert real_task("real-product-category").examples("test", seed=7) == first


@needs_data
def test_listing_reads_no_data(monkeypatch):
    def fail(path):
        raise AssertionError(f"read {path} while listing")

    monkeypatch.setattr(real, "read_rows", fail)
    real._parts.cache_clear()
    assert [t.name for t in real_tasks()] == NAMES


def test_no_data_folder_gives_an_empty_suite(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_dir() is None
    assert real_tasks() == [] and "real-v1" not in suite.available_suites()
    with pytest.raises(ShopLoRAError, match=f"needs the datasets folder: set {DATA_ENV}="):
        require_data_dir()
    with pytest.raises(ShopLoRAError, match="needs the datasets folder"):  # asked for by name: say why it is empty
        suite.tasks("real-v1")
    with pytest.raises(ShopLoRAError, match="no task called 'real-review-stars'"):
        suite.get_task("real-review-stars")


def write_reviews(directory: Path, rows: list[dict]) -> None:
    folder = directory / "datafiniti_amazon_reviews"
    folder.mkdir()
    (folder / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_data_folder_from_the_setting_with_one_dataset(tmp_path, monkeypatch):
    # Without a split field, a hash-ordered quarter becomes the test part; long reviews are cut.
    rows = [
        {"text": f"review number {i} " + "word " * 300, "title": f"title {i}", "label": i % 5 + 1} for i in range(20)
    ]
    write_reviews(tmp_path, rows)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_dir() == tmp_path and require_data_dir() == tmp_path
    [task] = real_tasks()
    assert task.name == "real-review-stars"
    train, test = task.examples("train"), task.examples("test")
    assert (len(train), len(test)) == (15, 5)
    assert not {e.input for e in train} & {e.input for e in test}
    assert all(len(e.input.split()) <= INPUT_WORDS and e.input.endswith(ELLIPSIS) for e in train + test)


def test_bad_rows_name_the_file_and_line(tmp_path, monkeypatch):
    write_reviews(tmp_path, [{"text": "fine", "label": 5}, {"txt": "renamed field", "label": 4}])
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(DataError, match=r"data\.jsonl, line 2: the row does not have the fields"):
        real_tasks()[0].examples("train")


# --- hub tasks, on local files in each dataset's schema ------------------------------------------------------------


def local_dataset(name: str):
    """A `datasets.Dataset` from tests/data/hub/<name>.jsonl, with banking77's ClassLabel feature as on the hub."""
    import datasets

    rows = [json.loads(line) for line in (HUB_DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    if name == "hub-banking77-intent":
        features = datasets.Features(
            {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(BANKING77_LABELS))}
        )
        return datasets.Dataset.from_list(rows, features=features)
    return datasets.Dataset.from_list(rows)


@pytest.mark.parametrize("name", list(HUB_TASKS))
def test_hub_mapping_on_local_rows(name):
    hub = HUB_TASKS[name]
    dataset = local_dataset(name)
    train, test = hub_examples(hub, dataset, "train"), hub_examples(hub, dataset, "test")
    assert train and test
    assert all(e.output in hub.spec.labels and e.input.strip() for e in train + test)
    if hub.test_split is None:  # one published split: cut into disjoint parts
        assert not {e.input for e in train} & {e.input for e in test}
        assert len(train) + len(test) == len(dataset)
    assert hub_examples(hub, dataset, "train") == train  # deterministic


def test_esci_keeps_us_rows_and_pairs_query_with_title():
    examples = hub_examples(HUB_TASKS["hub-esci-relevance"], local_dataset("hub-esci-relevance"), "test")
    assert len(examples) == 7  # the Spanish-locale row is left out
    assert {e.output for e in examples} == set(ESCI_LABELS)
    assert all(e.input.startswith("Query: ") and "\nProduct: " in e.input for e in examples)


def test_banking77_labels_are_names_with_or_without_class_label_features():
    hub = HUB_TASKS["hub-banking77-intent"]
    with_features = hub_examples(hub, local_dataset("hub-banking77-intent"), "train")
    assert "card_arrival" in {e.output for e in with_features}
    import datasets

    rows = [json.loads(line) for line in (HUB_DATA / "hub-banking77-intent.jsonl").read_text().splitlines()]
    assert hub_examples(hub, datasets.Dataset.from_list(rows), "train") == with_features


def test_hub_label_outside_the_spec_is_a_data_error():
    import datasets

    rows = [{"instruction": "hello there", "intent": "say_hello", "category": "X", "response": "hi", "flags": "B"}] * 4
    with pytest.raises(DataError, match="not among hub-bitext-intent's labels"):
        hub_examples(HUB_TASKS["hub-bitext-intent"], datasets.Dataset.from_list(rows), "train")


def test_offline_hub_download_is_a_data_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        DataError,
        match="could not download PolyAI/banking77 from the Hugging Face hub: .*offline, "
        "export the data to JSONL and use load_examples",
    ):
        load_hub_task("hub-banking77-intent", "test")
    with pytest.raises(TaskNotFoundError, match="hub-esci-relevance"):
        load_hub_task("hub-nope")


def test_listing_hub_tasks_downloads_nothing(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("downloaded while listing"))
    assert [t.name for t in hub_tasks()] == list(HUB_TASKS)
    assert all(t.split == "held-out" and t.suite == "hub" for t in hub_tasks())
