"""`load_examples`: every supported source, and every kind of bad input gives a DataError naming the fix."""

from __future__ import annotations

import json

import pytest

from prompts import DataError, Example, infer_labels, load_examples

ROWS = [
    {"input": "where is my parcel", "output": "where_is_my_order"},
    {"input": "cancel it please", "output": "cancel_order"},
    {"input": "I want my money back", "output": "return_item"},
]


def write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    path.write_bytes(content) if mode == "wb" else path.write_text(content, encoding="utf-8")
    return path


def test_jsonl_csv_json_array_list_and_dataset_agree(tmp_path):
    jsonl = write(tmp_path, "a.jsonl", "\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    csv_text = "input,output\n" + "\n".join(f'"{r["input"]}",{r["output"]}' for r in ROWS)
    csv_path = write(tmp_path, "a.csv", "\ufeff" + csv_text)  # spreadsheet exports start with a BOM
    array = write(tmp_path, "a.json", json.dumps(ROWS))
    import datasets

    expected = [Example(r["input"], r["output"]) for r in ROWS]
    for source in (jsonl, str(csv_path), array, ROWS, expected, datasets.Dataset.from_list(ROWS)):
        assert load_examples(source) == expected


def test_column_mapping_and_structured_outputs(tmp_path):
    path = write(
        tmp_path, "t.jsonl", "\n".join(json.dumps({"message": r["input"], "intent": r["output"]}) for r in ROWS)
    )
    examples = load_examples(path, columns={"input": "message", "output": "intent"})
    assert examples[0] == Example("where is my parcel", "where_is_my_order")
    rows = [{"input": "Red Nike shoe", "output": {"color": "red", "brand": "Nike"}}, {"input": "x", "output": 5}]
    assert [e.output for e in load_examples(rows)] == ['{"color": "red", "brand": "Nike"}', "5"]


def test_labels_given_and_inferred(tmp_path):
    assert infer_labels(load_examples(ROWS)) == ("where_is_my_order", "cancel_order", "return_item")
    with pytest.raises(DataError, match=r"example 3: output 'return_item' is not one of the labels"):
        load_examples(ROWS, labels=["where_is_my_order", "cancel_order"])


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.jsonl", "", r"empty\.jsonl is empty"),
        ("blank.jsonl", "\n\n  \n", r"is empty"),
        ("bad.jsonl", '{"input": "a", "output": "b"}\n{"input": "a", output}\n', r"bad\.jsonl, line 2: bad JSON"),
        ("list.jsonl", '["a", "b"]\n{"input": "a", "output": "b"}\n', r"line 1: expected a JSON object"),
        (
            "cols.jsonl",
            '{"text": "a", "output": "b"}\n{"text": "c", "output": "d"}\n',
            r"line 1: no 'input' field \(fields: text, output\); rename it or pass columns",
        ),
        (
            "noinput.jsonl",
            '{"input": "  ", "output": "b"}\n{"input": "c", "output": "d"}\n',
            r"line 1: 'input' is empty",
        ),
        (
            "nooutput.jsonl",
            '{"input": "a", "output": "b"}\n{"input": "c", "output": null}\n',
            r"line 2: 'output' is empty",
        ),
        ("one.jsonl", '{"input": "a", "output": "b"}\n', r"single example"),
        ("big.jsonl", json.dumps({"input": "x" * 5000, "output": "b"}) + "\n", r"5000 characters, over the limit"),
        ("cols.csv", "text,label\na,b\nc,d\n", r"cols\.csv, line 2: no 'input' field"),
        ("ragged.csv", "input,output\na,b,c\n", r"line 2: more values than header columns"),
        ("notes.txt", "a\tb\n", r"unknown file type '\.txt'"),
    ],
)
def test_bad_files_name_file_line_and_fix(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        load_examples(write(tmp_path, name, content))


def test_missing_file_directory_and_non_utf8(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_examples(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="is a directory"):
        load_examples(tmp_path)
    latin1 = '{"input": "ok", "output": "a"}\n{"input": "caf\u00e9", "output": "b"}\n'.encode("latin-1")
    with pytest.raises(DataError, match=r"not UTF-8 text \(line 2"):
        load_examples(write(tmp_path, "latin.jsonl", latin1, mode="wb"))


def test_bad_sources():
    with pytest.raises(DataError, match="cannot read examples from a int"):
        load_examples(3)
    with pytest.raises(DataError, match="example 1 is a str"):
        load_examples(["just text", "more"])
    with pytest.raises(DataError, match="holds no examples"):
        load_examples([])
    with pytest.raises(DataError, match=r"examples is one dict \(keys 'input', 'output'\), not a list of them; .*\[\{"):
        load_examples(ROWS[0])  # iterated, it gave the keys as examples: "example 1 is a str"
    with pytest.raises(DataError, match="cannot read examples from a bytes"):
        load_examples(b"input,output")
    with pytest.raises(DataError, match="columns can only map"):
        load_examples(ROWS, columns={"label": "x"})
