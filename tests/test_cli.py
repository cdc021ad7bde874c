"""The `shoplora` command line: tasks list/show/export, and errors as one line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from shoplora.cli import main


def test_tasks_list_json(capsys):
    assert main(["tasks", "list", "--suite", "ecommerce-v1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 24
    assert set(rows[0]) >= {"name", "family", "kind", "n_labels", "split"}
    assert {r["split"] for r in rows} == {"meta-train", "held-out"}


def test_tasks_list_table_and_filter(capsys):
    assert main(["tasks", "list", "--suite", "ecommerce-v1", "--split", "held-out"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "suite", "family", "kind", "n_labels", "split"]
    assert len(lines) >= 7 and all(line.split()[-1] == "held-out" for line in lines[1:] if line.strip())


def test_tasks_show(capsys):
    assert main(["tasks", "show", "service-intent", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- input") == 2 and '"kind": "classify"' in out


def test_tasks_export_roundtrip(tmp_path, capsys):
    from prompts import load_examples, suite

    assert main(["tasks", "export", "search-relevance", str(tmp_path)]) == 0
    folder = tmp_path / "search-relevance"
    task = suite.get_task("search-relevance")
    assert load_examples(folder / "train.jsonl", labels=task.spec.labels) == task.examples("train")
    assert load_examples(folder / "test.jsonl") == task.examples("test")
    assert json.loads((folder / "task.json").read_text())["spec"]["labels"] == list(task.spec.labels)
    assert main(["tasks", "export", "search-relevance", str(tmp_path)]) == 2  # no silent overwrite
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["tasks", "export", "search-relevance", str(tmp_path), "--overwrite"]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging dirs left behind


def test_unknown_task_is_one_line_error():
    result = subprocess.run([sys.executable, "-m", "shoplora", "tasks", "show", "nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no task called 'nope'; run `shoplora tasks list` to see the task names"
    assert "Traceback" not in result.stderr


def test_help_everywhere():
    for args in ([], ["tasks"], ["tasks", "list"], ["tasks", "show"], ["tasks", "export"], ["try"]):
        result = subprocess.run([sys.executable, "-m", "shoplora", *args, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "usage: shoplora" in result.stdout
