"""`report_to: tensorboard | wandb | mlflow | none` for meta-training, the benchmark and adapt."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import trackers
from adapters.trackers import TrackerError, check_report_to
from prompts import suite
from shoplora.cli import main
from train import evaluate
from train.config import ConfigError, load_config
from train.evaluate import load_eval_config

from tests.helpers import adapt_args, write_examples

ROOT = Path(__file__).resolve().parents[1]


def event_files(folder: Path) -> list[Path]:
    pytest.importorskip("tensorboard", reason="pip install tensorboard (the dev extra has it)")
    return sorted(folder.rglob("events.out.tfevents.*"))


def test_an_unknown_tracker_or_a_missing_package_is_a_clear_error(monkeypatch):
    assert check_report_to("none") is None and check_report_to(None) is None
    with pytest.raises(TrackerError, match="'tensorbord' is not a tracker .* tensorboard | wandb | mlflow | none"):
        check_report_to("tensorbord")
    monkeypatch.setitem(trackers.PACKAGES, "wandb", "no_such_package_for_shoplora")
    with pytest.raises(
        TrackerError,
        match="needs the no_such_package_for_shoplora package, which is not installed: "
        "pip install no_such_package_for_shoplora",
    ):
        check_report_to("wandb")


def test_configs_name_the_report_to_field():
    with pytest.raises(ConfigError, match="'report_to'"):
        load_config(ROOT / "configs" / "tiny.yaml", ["report_to=tensorbord"])
    with pytest.raises(ConfigError, match="'report_to'"):
        load_eval_config(ROOT / "configs" / "eval" / "quick.yaml", ["report_to=comet"])


def test_meta_training_reports_to_tensorboard_only_when_asked(tiny_model_dir, tmp_path):
    from train.meta import run

    common = [f"base_model={tiny_model_dir}", "outer_steps=1", "validation_tasks=0", "save_every=0"]
    run(load_config(ROOT / "configs" / "tiny.yaml", [*common, f"output_dir={tmp_path / 'none'}"]))
    assert not event_files(tmp_path / "none")
    run(
        load_config(ROOT / "configs" / "tiny.yaml", [*common, f"output_dir={tmp_path / 'tb'}", "report_to=tensorboard"])
    )
    assert event_files(tmp_path / "tb")


def test_the_benchmark_logs_each_score_to_tensorboard(tiny_model_dir, tmp_path):
    task = suite.get_task("service-intent-petshop").name
    config = load_eval_config(
        ROOT / "configs" / "eval" / "quick.yaml",
        [
            f"base_model={tiny_model_dir}",
            f"output_dir={tmp_path}",
            f"tasks=[{task}]",
            "methods=[zero_shot]",
            "shots=[4]",
            "seeds=1",
            "n_test=3",
            "curve_steps=[]",
            "save_adapter=null",
            "report_to=tensorboard",
        ],
    )
    evaluate.run(config)
    assert event_files(tmp_path)


def test_adapt_reports_its_losses_and_metrics(tiny_model_dir, tmp_path, monkeypatch, capsys):
    task = suite.get_task("service-intent-petshop")
    data = write_examples(tmp_path / "pets.jsonl", task.examples("train")[:6])
    monkeypatch.chdir(tmp_path)
    args = adapt_args(
        data, "--instruction", "Route it.", labels=task.spec.labels, steps=2, store="store", model=tiny_model_dir
    )
    assert main([*args, "--report-to", "mlfow"]) == 2  # refused before any training
    assert "'mlfow' is not a tracker" in capsys.readouterr().err
    assert main([*args, "--report-to", "tensorboard"]) == 0
    assert event_files(tmp_path / "runs" / "adapt" / "pets")
