"""The `shoplora` command line: tasks list/show/export, and errors as one line, never a traceback."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

from adapters import AdapterStore
from prompts import Example, ShopLoRAError
from shoplora.cli import main

from tests.helpers import adapt_args, write_examples

ROUTES = [("order {} where is it", "track"), ("order {} refund", "money")]  # message template, label


def intents_file(path, rounds: int, intents: list[tuple[str, str]]):
    """A data file of `rounds` messages an intent, one of each in turn: ("order {} refund", "money") gives
    "order 0 refund", "order 1 refund", ... labelled money."""
    return write_examples(path, [Example(text.format(i), label) for i in range(rounds) for text, label in intents])


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
    for args in (
        [],
        ["tasks"],
        ["tasks", "list"],
        ["tasks", "show"],
        ["tasks", "export"],
        ["try"],
        ["adapt"],
        ["predict"],
        ["adapters"],
        ["meta-train"],
        ["compare"],
    ):
        result = subprocess.run([sys.executable, "-m", "shoplora", *args, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "usage: shoplora" in result.stdout


def test_adapt_predict_and_adapters_commands(tmp_path, tiny_model_dir, capsys):
    from prompts import suite

    task = suite.get_task("service-intent-petshop")
    data = write_examples(tmp_path / "pets.jsonl", task.examples("train")[:10])
    store = str(tmp_path / "store")
    common = ["--store", store, "--model", str(tiny_model_dir)]
    pets = dict(labels=task.spec.labels, store=store, model=tiny_model_dir)
    assert main(adapt_args(data, "--instruction", "Route the message.", steps=2, **pets)) == 0
    out, err = capsys.readouterr()
    assert '"name": "pets"' in out and "shoplora predict pets" in out
    assert err.count("labels have no example") == 1 and "\nwarning: " in "\n" + err  # 10 examples, 12 intents
    assert "contextual calibration keeps them predictable" in err
    assert main(["adapt", str(data), "--instruction", "x", "--init", "none", *common]) == 2  # no silent overwrite
    assert "already exists" in capsys.readouterr().err
    raw = adapt_args(
        data, "--instruction", "Route the message.", "--calibration", "never", "--name", "raw", steps=1, **pets
    )
    assert main(raw) == 0
    assert "rarely predicted" in capsys.readouterr().err
    assert AdapterStore(store).read("raw").record.contextual_calibration is False
    assert AdapterStore(store).read("pets").record.contextual_calibration is True
    assert "contextual calibration" in (tmp_path / "store" / "pets" / "README.md").read_text()
    assert main(["predict", "pets", "my dog food bag arrived torn", "another one", *common]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["input"] for line in lines] == ["my dog food bag arrived torn", "another one"]
    assert all(
        line["prediction"] in task.spec.labels and set(line["scores"]) == set(task.spec.labels) for line in lines
    )
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"input": "skip next box please"}\n')
    assert main(["predict", "pets", "--file", str(inputs), "--abstain-below", "1.01", *common]) == 0
    assert json.loads(capsys.readouterr().out)["prediction"] == "abstain"
    assert main(["adapters", "list", "--store", store, "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["pets", "raw"]
    assert main(["adapters", "delete", "pets", "--store", store]) == 0
    capsys.readouterr()
    assert main(["predict", "pets", "hello", "--store", store]) == 2
    assert "no adapter called 'pets'" in capsys.readouterr().err


def test_adapt_bad_input_is_one_line(tmp_path, tiny_model_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "output": "b"}\n{oops\n')
    assert (
        main(
            [
                "adapt",
                str(bad),
                "--instruction",
                "x",
                "--init",
                "none",
                "--store",
                str(tmp_path / "s"),
                "--model",
                str(tiny_model_dir),
            ]
        )
        == 2
    )
    assert "bad.jsonl, line 2: bad JSON" in capsys.readouterr().err
    assert main(["adapt", str(bad), "--instruction", "x", "--name", "../evil", "--store", str(tmp_path / "s")]) == 2
    assert "is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["adapt", "data.jsonl", "--instruction", "x", "--init", "smollm2-135m-mta", "--store", "{store}"],
        ["compare", "product-match", "--inits", "none,smollm2-135m-mta"],
        ["serve", "--init", "smollm2-135m-mta", "--store", "{store}"],
    ],
    ids=lambda command: command[0],
)
def test_a_mistyped_init_fails_before_the_model_loads(command, tmp_path, monkeypatch, capsys):
    import adapters

    monkeypatch.setattr(adapters, "load_base", lambda *a, **k: pytest.fail("loaded the model for a missing init"))
    assert main([part.format(store=tmp_path / "store") for part in command]) == 2
    assert "no init at 'smollm2-135m-mta'" in capsys.readouterr().err


def test_compare_prints_a_table(tiny_model_dir, capsys):
    assert (
        main(
            [
                "compare",
                "service-intent-petshop",
                "--k",
                "4",
                "--inits",
                "none",
                "--n-test",
                "3",
                "--model",
                str(tiny_model_dir),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "method" not in line]
    assert rows == ["zero_shot", "icl", "lora_standard"]


def test_adapt_continue_adds_a_scenario_and_predict_picks_it(tmp_path, tiny_model_dir, capsys):
    first = intents_file(tmp_path / "routes.jsonl", 4, ROUTES)
    second = intents_file(tmp_path / "plans.jsonl", 4, [("box {} skip it", "skip"), ("box {} pause", "pause")])
    common = ["--store", str(tmp_path / "store"), "--model", str(tiny_model_dir)]
    assert main(["adapt", str(first), "--instruction", "Route it.", "--init", "none", "--steps", "2", *common]) == 0
    capsys.readouterr()
    routes = ["adapt", str(second), "--continue", "routes"]  # the second file as a scenario of the first's adapter
    assert main([*routes, "--instruction", "Plan change?", *common]) == 2
    assert "name it with --scenario" in capsys.readouterr().err
    assert main([*routes, "--instruction", "Plan change?", "--scenario", "plans", "--steps", "2", *common]) == 0
    assert '"scenario": "plans"' in capsys.readouterr().out
    assert main(["predict", "routes", "box 9 skip it", *common]) == 0
    assert set(json.loads(capsys.readouterr().out)["scores"]) == {"skip", "pause"}
    assert main(["predict", "routes", "order 9 refund", "--scenario", "custom", *common]) == 0
    assert set(json.loads(capsys.readouterr().out)["scores"]) == {"track", "money"}
    assert main(["predict", "routes", "x", "--scenario", "nope", *common]) == 2
    assert "no scenario 'nope'" in capsys.readouterr().err
    assert main(["adapt", str(second), "--continue", "missing", *common]) == 2
    assert "no adapter called 'missing'" in capsys.readouterr().err
    assert (tmp_path / "store" / "routes" / "scenarios" / "custom").is_dir()  # the first scenario kept its weights
    assert main([*routes, "--shared-weights", *common]) == 2
    assert "--shared-weights is for a new scenario" in capsys.readouterr().err
    shared = ["--instruction", "Plan change, again?", "--scenario", "plans-shared", "--shared-weights", "--steps", "2"]
    assert main([*routes, *shared, *common]) == 0
    assert '"scenario": "plans-shared"' in capsys.readouterr().out
    record = json.loads((tmp_path / "store" / "routes" / "shoplora.json").read_text())
    assert record["scenarios"]["plans-shared"]["weights"] == "." and record["scenarios"]["plans"]["weights"] == "."


def test_adapt_prints_how_many_examples_a_task_needs(tmp_path, tiny_model_dir, capsys):
    data = intents_file(tmp_path / "routes.jsonl", 16, ROUTES)
    common = ["--store", str(tmp_path / "store"), "--model", str(tiny_model_dir), "--init", "none", "--steps", "1"]
    assert main(["adapt", str(data), "--instruction", "Route it.", "--examples-needed-for", "0.8", *common]) == 0
    out = capsys.readouterr().out
    assert "held-out examples: a rough guide" in out
    assert main(["adapt", str(data), "--continue", "routes", "--examples-needed-for", "0.8", *common]) == 2
    assert "goes with a new adapter" in capsys.readouterr().err


def test_adapt_warns_when_one_label_takes_the_held_out_answers(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from adapters import Adapter
    from prompts import suite

    task = suite.get_task("service-intent-petshop")
    data = write_examples(tmp_path / "pets.jsonl", task.examples("train")[:40])
    # every held-out check answers the first intent, whatever the tiny model learns
    monkeypatch.setattr(
        Adapter,
        "label_scores",
        lambda self, inputs, *a, **k: [[1.0] + [0.0] * (len(self.spec.labels) - 1) for _ in inputs],
    )
    pets = dict(labels=task.spec.labels, store=tmp_path / "s", model=tiny_model_dir)
    assert main(adapt_args(data, "--instruction", "Route the message.", steps=2, **pets)) == 0
    out, err = capsys.readouterr()
    assert f"warning: one label takes most held-out answers: {task.spec.labels[0]!r}" in err
    metrics = json.loads(out[: out.index("\nsaved ")])["metrics"]
    assert metrics["held_out_per_label"][task.spec.labels[0]]["answered"] > 0


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the command loads a base model: these errors must come before minutes of loading."""
    import adapters

    monkeypatch.setattr(adapters, "load_base", lambda *a, **k: pytest.fail("loaded the model before the error"))


@pytest.mark.parametrize(
    "labels, problem",
    [
        ("a,,b", r"--labels: label 2 of 3 is empty \(two commas in a row\)"),
        ("a,b,", r"--labels: label 3 of 3 is empty \(a comma at the end\)"),
        (",a,b", r"--labels: label 1 of 3 is empty \(a comma at the start\)"),
        ("a, b,a", r"--labels lists 'a' 2 times \(labels 1 and 3\); give each label once"),
    ],
)
def test_ambiguous_labels_are_refused_saying_which(labels, problem, tmp_path, no_model, capsys):
    assert main(["adapt", "data.jsonl", "--instruction", "x", "--labels", labels, "--store", str(tmp_path)]) == 2
    assert re.search(problem, capsys.readouterr().err)


def test_a_label_list_too_long_for_the_context_is_named_as_the_problem(tmp_path, tiny_model_dir, capsys):
    labels = [f"label-{i}" for i in range(5000)]
    data = tmp_path / "many.jsonl"
    data.write_text("".join(json.dumps({"input": f"message {i}", "output": labels[i]}) + "\n" for i in range(4)))
    assert (
        main(
            [
                "adapt",
                str(data),
                "--instruction",
                "Route it.",
                "--init",
                "none",
                "--labels",
                ",".join(labels),
                "--store",
                str(tmp_path / "store"),
                "--model",
                str(tiny_model_dir),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert re.search(
        r"--labels is too long: the list of 5000 labels takes \d+ tokens of every prompt .* reads at "
        r"most 1024 tokens",
        err,
    )
    assert "an input" not in err


def test_a_data_file_name_that_is_no_adapter_name_suggests_one(tmp_path, no_model, capsys):
    from adapters.files import check_name

    assert main(["adapt", str(tmp_path / "My Data (v2).jsonl"), "--instruction", "x", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "the data file's name gives the adapter name 'my-data-(v2)', which is not allowed" in err
    assert "pass --name, e.g. --name my-data-v2" in err and check_name("my-data-v2")


def test_serve_on_a_port_in_use_says_so_before_loading_or_printing_the_url(tmp_path, no_model, capsys):
    from serve.server import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--init", "none", "--store", str(tmp_path)]) == 2
        with pytest.raises(ShopLoRAError, match=f"port {port} on 127.0.0.1 is already in use"):
            serve(None, port=port)  # taken between the CLI's check and the start: still no URL, no traceback
    out, err = capsys.readouterr()
    assert f"error: port {port} on 127.0.0.1 is already in use" in err and "pass another port" in err
    assert "http://" not in out


def test_an_adapter_for_another_base_names_both_models(tmp_path, tiny_base, tiny_model_dir, capsys):
    import shutil

    from adapters import Adapter
    from adapters.lora import LoraSettings
    from adapters.record import AdapterRecord
    from prompts import suite

    store = AdapterStore(tmp_path / "store")
    spec = suite.get_task("service-intent-petshop").spec
    adapter = Adapter(tiny_base, spec, None, LoraSettings(r=4), AdapterRecord(spec=spec))
    path = store.save(adapter, "pets")
    adapter.unload()
    record = json.loads((path / "shoplora.json").read_text())
    (path / "shoplora.json").write_text(json.dumps({**record, "base_fingerprint": "0" * 16}))  # made on another
    common = ["predict", "pets", "where is my parcel", "--store", str(tmp_path / "store")]
    other = shutil.copytree(tiny_model_dir, tmp_path / "other-model")
    assert main([*common, "--model", str(other)]) == 2
    err = capsys.readouterr().err
    made_for = f"was made for {tiny_base.model_id} (architecture {'0' * 16})"
    assert f"{made_for}, not for the loaded base {other.resolve()} (llama, 2 layers" in err
    assert main(common) == 2  # its own base, by name: the model under that name is not the one it was made for
    err = capsys.readouterr().err
    assert err.count(tiny_base.model_id) == 1 and "it was replaced since" in err
