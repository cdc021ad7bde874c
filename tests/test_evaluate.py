"""The evaluation benchmark: a tiny-model grid end to end, resume, its statistics on hand-made numbers, configs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

import train.eval_average as eval_average
import train.eval_cell as eval_cell
import train.eval_grid as eval_grid
import train.evaluate as evaluate
from adapters import adapt, load_base
from adapters import learning_curve
from adapters.files import read_lora_dir, write_lora_dir
from prompts import ShopLoRAError, suite
from train import stats
from train.config import ConfigError, load_config
from train.evaluate import EvalConfig, load_eval_config
from train.meta import run as meta_train

ROOT = Path(__file__).parent.parent
EVAL_CONFIGS = sorted((ROOT / "configs" / "eval").glob("*.yaml"))
TASK = "risk-return-abuse"  # held out, 3 labels: quick to score on the tiny model


@pytest.fixture(scope="module")
def tiny_multitask_init(tiny_model_dir, tmp_path_factory) -> Path:
    """A multitask init for the tiny model (one outer step of configs/tiny.yaml): seconds."""
    output = tmp_path_factory.mktemp("multitask")
    return meta_train(
        load_config(
            ROOT / "configs" / "tiny.yaml",
            [
                f"base_model={tiny_model_dir}",
                f"output_dir={output}",
                "algorithm=multitask",
                "outer_steps=1",
                "validation_tasks=0",
                "save_every=0",
            ],
        )
    )


def grid(model_dir: Path, init: Path, output: Path, *overrides: str) -> EvalConfig:
    """2 methods x 1 k x 2 seeds on one held-out task, with the accuracy-vs-steps curve at that k."""
    return load_eval_config(
        ROOT / "configs" / "eval" / "quick.yaml",
        [
            f"base_model={model_dir}",
            f"multitask_init={init}",
            f"output_dir={output}",
            f"tasks=[{TASK}]",
            "methods=[lora_standard,lora_multitask]",
            "shots=[4]",
            "seeds=2",
            "n_test=4",
            "steps=3",
            "curve_k=4",
            "curve_steps=[0,1,2]",
            "save_adapter=null",
            *overrides,
        ],
    )


# ------------------------------------------------------------------------------------------------ the grid
def test_grid_writes_results_json_md_and_plots(tiny_model_dir, tiny_multitask_init, tmp_path):
    results = evaluate.run(grid(tiny_model_dir, tiny_multitask_init, tmp_path))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results)) and on_disk["status"] == "complete"
    for key in (
        "config",
        "versions",
        "device",
        "git",
        "base_model",
        "inits",
        "tasks",
        "runs",
        "summary",
        "comparisons",
        "steps_to_target",
        "examples_needed",
    ):
        assert key in on_disk, key
    assert on_disk["versions"]["torch"] == torch.__version__ and "commit" in on_disk["git"]
    runs = on_disk["runs"]
    assert sorted((r["method"], r["seed"]) for r in runs) == [
        ("lora_multitask", 0),
        ("lora_multitask", 1),
        ("lora_standard", 0),
        ("lora_standard", 1),
    ]
    assert all(r["task"] == TASK and r["k"] == 4 and r["steps"] == 3 and 0 <= r["score"] <= 1 for r in runs)
    # the curve: steps 0, 1, 2 on the way, then the adapter as returned after its 3 steps
    assert all([step for step, _ in r["curve"]] == [0, 1, 2, 3] and r["curve"][-1][1] == r["score"] for r in runs)
    assert [(row["method"], row["k"], row["n_seeds"]) for row in on_disk["summary"]] == [
        ("lora_standard", 4, 2),
        ("lora_multitask", 4, 2),
    ]
    for row in on_disk["summary"]:
        scores = [r["score"] for r in runs if r["method"] == row["method"]]
        assert row["mean"] == pytest.approx(sum(scores) / 2) and row["std"] == pytest.approx(stats.mean_std(scores)[1])
    [comparison] = on_disk["comparisons"]
    assert (comparison["method"], comparison["baseline"], comparison["n"]) == ("lora_multitask", "lora_standard", 2)
    assert "cannot show significance" in comparison["note"]  # 2 pairs never can
    steps = on_disk["steps_to_target"]
    assert steps["k"] == 4 and {r["method"] for r in steps["rows"]} == {"lora_standard", "lora_multitask"}
    multitask = next(r for r in steps["rows"] if r["method"] == "lora_multitask")
    assert multitask["steps"] is not None and multitask["steps"] <= 3  # it reaches its own final score
    report = (tmp_path / "results.md").read_text()
    assert "| lora_multitask | " in report and "| method | k=4 | steps | s/adaptation |" in report
    for name in ("score_vs_k.png", "score_vs_steps_k4.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_interrupted_grid_resumes_without_redoing_runs(tiny_model_dir, tiny_multitask_init, tmp_path, monkeypatch):
    calls = []
    real_adapt = eval_cell.adapt

    def adapt_then_fail(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the machine goes away during the fourth adaptation
        calls.append(kwargs["seed"])
        return real_adapt(*args, **kwargs)

    monkeypatch.setattr(eval_cell, "adapt", adapt_then_fail)
    config = grid(tiny_model_dir, tiny_multitask_init, tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        evaluate.run(config)
    partial = json.loads((tmp_path / "run" / "results.json").read_text())
    assert partial["status"] == "running" and len(partial["runs"]) == 3 and "summary" not in partial

    with pytest.raises(ConfigError, match="resume=true"):
        evaluate.run(config)
    with pytest.raises(ConfigError, match="n_test"):
        evaluate.run(grid(tiny_model_dir, tiny_multitask_init, tmp_path / "run", "resume=true", "n_test=5"))

    calls.clear()
    monkeypatch.setattr(eval_cell, "adapt", lambda *a, **k: calls.append(k["seed"]) or real_adapt(*a, **k))
    resumed = evaluate.run(grid(tiny_model_dir, tiny_multitask_init, tmp_path / "run", "resume=true"))
    assert calls == [1]  # only the run that was cut off
    assert all(run in resumed["runs"] for run in partial["runs"])  # kept as they were, seconds and all
    assert resumed["git"] == partial["git"] and len(resumed["resumed"]) == 1  # the code each part ran with
    whole = evaluate.run(grid(tiny_model_dir, tiny_multitask_init, tmp_path / "whole"))
    assert [(r["method"], r["seed"], r["score"]) for r in resumed["runs"]] == [
        (r["method"], r["seed"], r["score"]) for r in whole["runs"]
    ]


def test_a_resume_refuses_runs_made_with_another_init_or_base(
    tiny_model_dir, tiny_multitask_init, tmp_path, monkeypatch
):
    init = tmp_path / "multitask"  # a folder whose weights change while its name stays, like a re-shipped init
    shutil.copytree(tiny_multitask_init, init)
    out = tmp_path / "run"
    evaluate.run(grid(tiny_model_dir, init, out, "seeds=1", "curve_steps=[]"))
    # a while without lora_multitask: its runs stay, and so does the record of the init they were made with
    dropped = evaluate.run(
        grid(tiny_model_dir, init, out, "seeds=1", "curve_steps=[]", "resume=true", "methods=[lora_standard]")
    )
    assert "lora_multitask" in dropped["earlier"]["inits"] and len(dropped["runs"]) == 2
    shipped = read_lora_dir(init)

    def reship(state: dict) -> None:  # new weights under the same name, saved with their checksum as inits are
        write_lora_dir(
            init,
            state=state,
            settings=shipped.settings,
            base_model_id=shipped.base_model_id,
            base_fingerprint=shipped.record.base_fingerprint,
            record=shipped.record,
            overwrite=True,
        )

    reship({key: tensor + 0.01 for key, tensor in shipped.state.items()})
    with pytest.raises(ConfigError, match="the lora_multitask init"):  # old runs would sit beside new ones
        evaluate.run(grid(tiny_model_dir, init, out, "seeds=1", "curve_steps=[]", "resume=true"))
    reship(shipped.state)
    # the same config on another machine: dtype auto is bf16 on a GPU, and fp32 scores are not bf16 scores
    saved = json.loads((out / "results.json").read_text())
    saved["base_model"]["dtype"] = "bfloat16"
    (out / "results.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="the base model's dtype"):
        evaluate.run(grid(tiny_model_dir, init, out, "seeds=1", "curve_steps=[]", "resume=true"))
    # a settings change is refused before the model loads (and before lora_average would be rebuilt)
    monkeypatch.setattr(eval_grid, "load_base", lambda *a, **k: pytest.fail("loaded the model for a refused resume"))
    with pytest.raises(ConfigError, match="n_test"):
        evaluate.run(grid(tiny_model_dir, init, out, "seeds=1", "curve_steps=[]", "resume=true", "n_test=5"))


def test_a_mistyped_init_fails_before_the_model_loads(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(eval_grid, "load_base", lambda *a, **k: pytest.fail("loaded the model for a missing init"))
    with pytest.raises(ShopLoRAError, match="no init at.*smollm2-135m-meta"):
        evaluate.run(grid(tiny_model_dir, tmp_path / "no-such-init", tmp_path / "out"))


def test_results_saved_before_a_setting_existed_resume_with_what_they_did(tmp_path):
    # contextual calibration and cover_labels came later: older results.json lack them, and were made without them
    evaluation = evaluate.Evaluation(load_eval_config(EVAL_CONFIGS[0], [f"output_dir={tmp_path}"]))
    saved = {
        "config": {
            k: v for k, v in evaluation.config.to_dict().items() if k not in ("cover_labels", "contextual_calibration")
        }
    }
    with pytest.raises(ConfigError, match="contextual_calibration"):
        evaluation._check_settings(saved)  # the default is auto
    evaluate.Evaluation(
        load_eval_config(EVAL_CONFIGS[0], [f"output_dir={tmp_path}", "contextual_calibration=never"])
    )._check_settings(saved)


def test_user_task_zero_shot_icl_and_a_kept_adapter(tiny_model_dir, tiny_multitask_init, tmp_path):
    task = suite.get_task(TASK)
    data = tmp_path / "My Returns.jsonl"
    data.write_text("\n".join(json.dumps(e.to_dict()) for e in task.examples("train")[:20]) + "\n")
    user = f"{{path: '{data}', instruction: 'Is this return abusive?', labels: [{','.join(task.spec.labels)}]}}"
    store = tmp_path / "store"
    results = evaluate.run(
        grid(
            tiny_model_dir,
            tiny_multitask_init,
            tmp_path / "run",
            f"tasks=[{user}]",
            "methods=[zero_shot,icl,lora_standard]",
            "shots=[2,4]",
            "curve_steps=[]",
            "n_test=16",
            f"save_adapter={{name: my-returns, task: my-returns, k: 4, method: lora_standard, store: '{store}'}}",
        )
    )
    [spec] = results["tasks"]
    assert spec["name"] == "my-returns" and spec["n_test"] == 16  # 20 examples: 4 for support sets, 16 to test
    zero_shot = [r for r in results["runs"] if r["method"] == "zero_shot"]
    assert len(zero_shot) == 1 and zero_shot[0]["k"] == 0  # one run: it sees no examples
    assert {(r["n_seeds"], r["std"]) for r in results["summary"] if r["method"] == "zero_shot"} == {(1, None)}
    assert {(r["method"], r["k"]) for r in results["summary"]} == {
        (m, k) for m in ("zero_shot", "icl", "lora_standard") for k in (2, 4)
    }
    assert {r["method"] for r in results["examples_needed"]} <= {"icl", "lora_standard"}
    assert all(r["task"] == "my-returns" and r["target"] == 0.8 for r in results["examples_needed"])
    kept = read_lora_dir(store / "my-returns")
    assert kept.record.n_examples == 4 and results["saved_adapter"]["name"] == "my-returns"


def test_a_user_file_too_small_for_the_grid_is_one_line(tiny_model_dir, tmp_path, capsys):
    from shoplora.cli import main

    data = tmp_path / "few.jsonl"
    data.write_text('{"input": "a", "output": "x"}\n{"input": "b", "output": "y"}\n' * 5)
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"base_model: {tiny_model_dir}\ntasks: [{{path: {data}, instruction: Sort it.}}]\n"
        f"shots: [4, 8]\noutput_dir: {tmp_path / 'out'}\n"
    )
    assert main(["eval", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "few.jsonl has 10 examples" in err and "label more examples" in err


def test_average_init_is_built_once_from_per_task_adapters(tiny_model_dir, tiny_multitask_init, tmp_path, monkeypatch):
    base = load_base(str(tiny_model_dir), device="cpu")
    config = grid(tiny_model_dir, tiny_multitask_init, tmp_path, "average_examples=4", "average_steps=2")
    recipe = evaluate.average_recipe(config, read_lora_dir(tiny_multitask_init))
    assert recipe["tasks"] == read_lora_dir(tiny_multitask_init).record.tasks and recipe["steps_per_task"] == 2
    folder = evaluate.average_init(base, tmp_path / "average", recipe)
    made = read_lora_dir(folder)
    assert made.record.algorithm == "average" and made.record.recipe == recipe
    assert "mean of 4 per-task LoRA adapters" in made.record.trained_on
    assert any(t.abs().sum() > 0 for k, t in made.state.items() if "lora_B" in k)  # the adapters learned something
    monkeypatch.setattr(eval_average, "adapt", lambda *a, **k: pytest.fail("rebuilt an init that was already there"))
    assert evaluate.average_init(base, tmp_path / "average", recipe) == folder


def test_support_sets_can_cover_every_label():
    import random

    task = suite.get_task("service-intent-petshop")  # 12 intents
    pool = task.examples("train")
    covering = evaluate.support_set(task, 16, 0, cover_labels=True)
    assert len(covering) == 16 and len({id(e) for e in covering}) == 16  # no example twice
    assert {e.output for e in covering} == set(task.spec.labels)
    assert len({e.output for e in evaluate.support_set(task, 8, 1, cover_labels=True)}) == 8  # k < 12: 8 labels
    assert evaluate.support_set(task, 16, 0, cover_labels=True) == covering  # the same for a seed
    # the default draw is the one every earlier grid used, so their support sets stay comparable
    assert evaluate.support_set(task, 8, 3) == random.Random(f"support:3:{task.name}").sample(pool, 8)


def test_watching_adaptation_does_not_change_it(tiny_base):
    task = suite.get_task(TASK)
    support = task.examples("train")[:6]
    seen = []
    watched = adapt(
        tiny_base,
        support,
        spec=task.spec,
        init=None,
        steps=3,
        seed=1,
        watch=lambda adapter, steps: seen.append((steps, adapter.evaluate(support[:2])["accuracy"])),
    )
    plain = adapt(tiny_base, support, spec=task.spec, init=None, steps=3, seed=1)
    assert [steps for steps, _ in seen] == [0, 1, 2, 3]
    assert all(torch.equal(t, plain.state()[k]) for k, t in watched.state().items())
    watched.unload()
    plain.unload()


# ------------------------------------------------------------------------------------------------ statistics
def test_mean_and_sample_std():
    assert stats.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert stats.mean_std([0.5]) == (0.5, None)  # one value: spread unknown, not 0


def test_paired_test_on_hand_made_differences():
    # differences 3, 1, 2: of the 8 sign patterns only +++ and --- reach |sum| 6, so p = 2/8
    result = stats.paired_test([4.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert (result.n, result.mean_difference, result.p_value) == (3, 2.0, 0.25)
    assert "cannot show significance" in result.note("a", "b")  # 3 pairs: p is never below 0.25
    # +0.1 and -0.1 cancel: no evidence at all
    assert stats.paired_test([0.6, 0.4], [0.5, 0.5]).p_value == 1.0
    # six wins of 0.1: p = 2/64, significant at 0.05
    six = stats.paired_test([0.6] * 6, [0.5] * 6)
    assert six.p_value == pytest.approx(2 / 64) and "significantly better" in six.note("a", "b")
    # 30 pairs (sampled sign patterns): one loss among many wins is still a clear win; noise is not
    assert stats.paired_test([1.0] * 29 + [0.0], [0.0] * 29 + [1.0]).p_value < 0.001
    noisy = stats.paired_test([0.5 + 0.01 * ((-1) ** i) for i in range(30)], [0.5] * 30)
    assert noisy.p_value > 0.5 and "not significant" in noisy.note("a", "b")


def test_steps_to_target_on_a_hand_made_curve():
    curve = {0: 0.1, 2: 0.4, 4: 0.6, 8: 0.7}
    assert stats.steps_to_target(curve, 0.6) == 4
    assert stats.steps_to_target(curve, 0.65) == 8
    assert stats.steps_to_target(curve, 0.05) == 0
    assert stats.steps_to_target(curve, 0.9) is None


def test_steps_to_target_uses_only_the_seeds_of_the_grid():
    # 4 seeds were run, then the grid was resumed with seeds=2: the summary and the steps-to-target use seeds 0-1
    from train import report

    config = load_eval_config(
        ROOT / "configs" / "eval" / "quick.yaml",
        [
            "methods=[lora_multitask,lora_meta]",
            "shots=[8]",
            "seeds=2",
            "curve_k=8",
            "curve_steps=[4]",
            "save_adapter=null",
        ],
    )
    multitask = [0.3, 0.3, 0.9, 0.9]  # seeds 2 and 3 would lift the target to 0.6
    runs = [
        evaluate.Result(method, final, "accuracy", 12, 1.0, task=TASK, k=8, seed=seed, curve=[(4, early), (12, final)])
        for seed in range(4)
        for method, early, final in (("lora_multitask", 0.2, multitask[seed]), ("lora_meta", 0.35, 0.5))
    ]
    result = report.steps_to_targets(runs, config, [TASK])
    meta = next(r for r in result["rows"] if r["method"] == "lora_meta" and r["task"] == "all")
    assert meta["target"] == pytest.approx(0.3) and meta["steps"] == 4


def test_examples_needed_recovers_a_power_law():
    # error = 0.5 * k^-0.5: 0.9 (error 0.1) needs k = (0.5 / 0.1)^2 = 25
    points = [(k, 1 - 0.5 * k**-0.5) for k in (4, 8, 16)]
    estimate = learning_curve.examples_needed({0: points, 1: points}, 0.9, n_scored=100)
    assert estimate.k == pytest.approx(25) and estimate.low == pytest.approx(25) and estimate.high == pytest.approx(25)
    assert estimate.exponent == pytest.approx(0.5) and not estimate.observed
    assert "about 25 examples" in estimate.note("lora_meta") and "extrapolated" in estimate.note("lora_meta")
    noisy = learning_curve.examples_needed({0: [(4, 0.5), (16, 0.8)], 1: [(4, 0.6), (16, 0.7)]}, 0.9, n_scored=20)
    assert noisy.low <= noisy.k <= (noisy.high or float("inf"))
    flat = learning_curve.examples_needed({0: [(4, 0.5), (16, 0.5)]}, 0.9, n_scored=20)
    assert flat.k is None and "not within" in flat.note("icl")
    assert learning_curve.examples_needed({0: [(8, 0.5)], 1: [(8, 0.6)]}, 0.9, n_scored=20) is None  # one k: no fit


def test_examples_needed_when_the_target_is_already_reached():
    # 0.90 at k=4 and 0.89 at k=8: the fit's slope is flat, but no more examples are needed
    estimate = learning_curve.examples_needed({0: [(4, 0.90), (8, 0.89)], 1: [(4, 0.91), (8, 0.90)]}, 0.8, n_scored=100)
    assert estimate.observed and estimate.k == 4
    assert "already with 4 examples on average (the fewest tried)" in estimate.note("lora_meta")
    later = learning_curve.examples_needed({0: [(4, 0.5), (8, 0.7), (16, 0.85)]}, 0.8, n_scored=100)
    assert later.observed and later.k == 16 and "fewest" not in later.note("icl")


def test_examples_needed_fits_the_mean_so_one_perfect_seed_does_not_decide():
    # both seeds score 0.60 at k=8; one seed's 1.0 at k=16 must not put 0.85 below k=16 (a per-seed fit of log
    # errors said ~8) nor far from the 0.95 case
    perfect = {0: [(4, 0.5), (8, 0.6), (16, 0.65)], 1: [(4, 0.5), (8, 0.6), (16, 1.0)]}
    nearly = {0: [(4, 0.5), (8, 0.6), (16, 0.65)], 1: [(4, 0.5), (8, 0.6), (16, 0.95)]}
    a = learning_curve.examples_needed(perfect, 0.85, n_scored=40)
    b = learning_curve.examples_needed(nearly, 0.85, n_scored=40)
    assert 16 < a.k < b.k < 1.5 * a.k and not a.observed  # means at k=16: 0.825 and 0.80


def test_examples_needed_from_one_curve_has_a_range_from_the_held_out_noise():
    # adapt's estimate: one adaptation per size scored on few held-out examples; the range says how rough it is
    estimate = learning_curve.examples_needed({0: [(6, 3 / 6), (13, 4 / 6), (26, 5 / 6)]}, 0.8, n_scored=6)
    assert estimate.observed and estimate.k == 26
    assert estimate.low is not None and estimate.low < 26 and (estimate.high is None or estimate.high > 26)
    assert "80% range" in estimate.note("this task")


# ------------------------------------------------------------------------------------------------ configs
def test_eval_configs_ship():
    assert {p.stem for p in EVAL_CONFIGS} >= {"quick", "full"}


@pytest.mark.parametrize("path", EVAL_CONFIGS, ids=lambda p: p.name)
def test_every_eval_config_loads(path):
    config = load_eval_config(path)
    assert path.read_text().startswith("# shoplora eval ")
    # the last method is the one each other is compared with: adapt from the default (multi-task) or the meta init
    assert config.methods[-1] in ("lora_multitask", "lora_meta")
    assert not config.curve_steps or config.curve_k in config.shots


@pytest.mark.parametrize(
    "override, field",
    [
        ("methods=[zero_shot,lora_magic]", "methods"),
        ("shots=[0,4]", "shots"),
        ("seeds=0", "seeds"),
        ("target=80", "target"),
        ("curve_k=5", "curve_k"),
        ("tasks=[{path: x.jsonl}]", "instruction"),
        ("tasks=[{pth: x.jsonl, instruction: y}]", "pth"),
        ("save_adapter={name: x, task: y, k: 3}", "save_adapter"),
        ("seedz=3", "seedz"),
        ("meta_init=none", "meta_init"),
        ("dtype=int8", "dtype"),
        ("contextual_calibration=true", "contextual_calibration"),  # YAML's true is not one of auto/always/never
    ],
)
def test_bad_eval_config_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=re.escape(repr(field))):
        load_eval_config(EVAL_CONFIGS[0], [override])


def test_nested_errors_say_where():
    with pytest.raises(ConfigError, match="in config field 'tasks': unknown config field"):
        load_eval_config(EVAL_CONFIGS[0], ["tasks=[{pth: x.jsonl, instruction: y}]"])


def test_python_m_train_evaluate_runs_the_grid_and_reports_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    """`python -m train.evaluate CONFIG` is documented beside `shoplora eval`: it must run the grid (it once
    imported and exited 0 doing nothing) and turn a bad config into one line and exit 2."""
    import train.evaluate as evaluate_module

    ran = []

    def fake_run(config):
        ran.append(config)
        (Path(config.output_dir) / evaluate_module.REPORT).write_text("| method | accuracy |\n")
        return {"saved_adapter": None}

    monkeypatch.setattr(evaluate_module, "run", fake_run)
    config = tmp_path / "grid.yaml"
    config.write_text("tasks: [service-intent-petshop]\nmethods: [tfidf]\nshots: [8]\nseeds: 1\n")
    assert evaluate_module.main([str(config), f"output_dir={tmp_path}"]) == 0
    assert len(ran) == 1 and list(ran[0].shots) == [8]
    assert "| method | accuracy |" in capsys.readouterr().out

    assert evaluate_module.main([str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
