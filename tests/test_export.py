"""Adapters out of ShopLoRA: `shoplora export` (merged model, vLLM folder, Hub push), `shoplora chat`, and model
cards that let plain transformers + PEFT reproduce ShopLoRA's predictions."""

from __future__ import annotations

from typing import Any

import io
import json
import re
import sys

import pytest
import torch
import yaml

from adapters import AdapterStore, load_base
from adapters import scoring
from adapters.adapter import Adapter
from adapters.card import CONTENT_FREE, front_matter
from adapters.lora import LoraSettings
from adapters.record import AdapterRecord, FitReport, InitRecord
from adapters.training import InnerLoop
from prompts import TaskSpec, suite
from shoplora.cli import main

TASK = suite.get_task("service-intent-petshop")
TEXTS = ["my dog food bag arrived torn", "skip next box please", "where is my parcel??"]


def randomised(base, spec: TaskSpec, temperature: float = 1.0, **record: Any) -> Adapter:
    """An adapter whose LoRA B matrices are not zero, so it changes the base model's logits."""
    adapter = Adapter(base, spec, None, LoraSettings(r=4), AdapterRecord(spec=spec, **record), temperature=temperature)
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(t.shape, generator=generator) * 0.2 for key, t in adapter.state().items()}
    with base.lock:
        from adapters.lora import load_lora_state

        load_lora_state(base.peft, state, adapter.peft_name)
    return adapter


@pytest.fixture(scope="module")
def stored(tiny_base, tmp_path_factory):
    """A store with a classify adapter (contextual calibration on, temperature 1.7) and a generate adapter."""
    store = AdapterStore(tmp_path_factory.mktemp("store"))
    classify = randomised(
        tiny_base,
        TASK.spec,
        temperature=1.7,
        contextual_calibration=True,
        n_examples=24,
        fit=FitReport(
            n_train=19,
            n_held_out=5,
            inner_loop=InnerLoop(),
            steps_run=1,
            steps_kept=1,
            train_loss=[1.0],
            metrics={"held_out_accuracy": 0.75, "held_out_ece": 0.1, "held_out_per_label": {"x": {}}},
        ),
    )
    store.save(classify, "pets")
    answer = TaskSpec("custom", "custom", "generate", "Answer the customer politely.")
    store.save(randomised(tiny_base, answer), "answers")
    return store, classify


# ----------------------------------------------------------------------------------------------- model cards
def card_parts(folder):
    text = (folder / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    code = re.search(r"```python\n(.*?)```", text, re.S)[1]
    return text, meta, code


def test_the_card_lets_plain_peft_reproduce_a_classify_prediction(stored, monkeypatch):
    store, adapter = stored
    text, meta, code = card_parts(store.path("pets"))
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert "BASE_MODEL = " in code and "(base_model" not in code  # defines what it uses (exec below proves it)
    for label in TASK.spec.labels:
        assert f"`{label}`" in text
    assert meta["model-index"][0]["results"][0]["metrics"] == [
        {"type": "accuracy", "name": "held_out_accuracy", "value": 0.75},
        {"type": "ece", "name": "held_out_ece", "value": 0.1},
    ]
    monkeypatch.chdir(store.root)  # ADAPTER names the folder, as it is on the Hub or beside the user's script
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own card, run as a user would
    for text_, prediction in zip(TEXTS, adapter.predict(TEXTS)):
        label, confidence = namespace["classify"](text_)
        assert label == prediction.label
        assert confidence == pytest.approx(prediction.confidence, abs=1e-4)


def test_the_card_names_the_base_model_as_the_hub_expects():
    meta = front_matter("acme", "HuggingFaceTB/SmolLM2-135M-Instruct", AdapterRecord(spec=TASK.spec))
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "base_model:adapter:HuggingFaceTB/SmolLM2-135M-Instruct" in meta["tags"]
    assert "base_model" not in front_matter("acme", "/tmp/my-model", InitRecord())  # a local folder is no Hub id


def test_the_cards_content_free_inputs_are_the_scorers():
    assert CONTENT_FREE == scoring.CONTENT_FREE


def test_a_generate_cards_snippet_runs(stored, monkeypatch):
    store, _ = stored
    _, _, code = card_parts(store.path("answers"))
    monkeypatch.chdir(store.root)
    exec(compile(code.replace("max_new_tokens=96", "max_new_tokens=3"), "README.md", "exec"), {})  # noqa: S102


# ------------------------------------------------------------------------------------------------------ merge
def test_export_merge_gives_the_logits_of_base_plus_adapter(stored, tiny_model_dir, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    store, _ = stored
    out = tmp_path / "merged"
    assert main(["export", "pets", "--merge", str(out), "--store", str(store.root)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert "replay" not in json.loads((out / "shoplora.json").read_text())
    ids = torch.tensor([load_base(str(tiny_model_dir), device="cpu").tokenizer("where is my parcel")["input_ids"]])
    with torch.no_grad():
        expected = (
            PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(store.path("pets")))
            .eval()(ids)
            .logits
        )
        merged = AutoModelForCausalLM.from_pretrained(out).eval()(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()(ids).logits
    assert torch.allclose(merged, expected, atol=1e-4)
    assert not torch.allclose(merged, plain, atol=1e-3)  # the adapter is in there
    assert main(["export", "pets", "--merge", str(out), "--store", str(store.root)]) == 2  # no silent overwrite
    assert "pass --overwrite" in capsys.readouterr().err
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


# ------------------------------------------------------------------------------------------------------- vLLM
# vLLM's documented LoRA constraints (vllm/config/lora.py, vllm/lora/peft_helper.py), checked without vLLM:
MAX_LORA_RANK_CHOICES = {1, 8, 16, 32, 64, 128, 256, 320, 512}
LLAMA_LORA_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
PEFT_HELPER_REQUIRED = {"r", "lora_alpha", "target_modules"}
LORA_KEY = re.compile(r"^base_model\.model\.(?:.+\.)?(\w+)\.lora_[AB]\.weight$")  # parse_fine_tuned_lora_name


def test_export_for_vllm_writes_a_folder_within_vllms_documented_limits(stored, tmp_path, capsys):
    from safetensors import safe_open

    store, _ = stored
    out = tmp_path / "pets-vllm"
    assert main(["export", "pets", "--for", "vllm", str(out), "--store", str(store.root)]) == 0
    printed = capsys.readouterr().out
    assert f"--enable-lora --lora-modules pets={out}" in printed and "--max-lora-rank" not in printed  # r=4 <= 16
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert PEFT_HELPER_REQUIRED <= set(config)
    assert not config["modules_to_save"] and not config["use_dora"] and config["bias"] == "none"
    assert config["r"] <= min(c for c in MAX_LORA_RANK_CHOICES if c >= 16)  # loads with the default --max-lora-rank
    assert isinstance(config["target_modules"], list) and set(config["target_modules"]) <= LLAMA_LORA_MODULES
    with safe_open(out / "adapter_model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    modules = {LORA_KEY.match(key)[1] for key in keys}  # every key parses; no lm_head / embed_tokens tensors
    assert modules == set(config["target_modules"])
    card = (out / "README.md").read_text()
    assert "Answer with one label: " + ", ".join(TASK.spec.labels) in card and "vllm serve" in card


def test_vllm_export_names_the_rank_flag_and_refuses_unsupported_modules(tiny_base, tmp_path):
    from adapters import export
    from adapters.files import read_lora_dir

    store = AdapterStore(tmp_path / "s")
    store.save(randomised(tiny_base, TASK.spec), "wide")
    files = read_lora_dir(store.path("wide"))
    files.settings = LoraSettings(r=24)
    assert export.vllm_rank(24) == 32 and "--max-lora-rank 32" in export.vllm_command("wide", files, tmp_path)
    files.state = {**files.state, "base_model.model.lm_head.lora_A.weight": torch.zeros(1)}
    with pytest.raises(export.ExportError, match="lm_head: vLLM supports only q_proj"):
        export.vllm_folder(files, tmp_path / "out")
    with pytest.raises(export.ExportError, match="largest --max-lora-rank"):
        export.vllm_rank(1024)


# ------------------------------------------------------------------------------------------------------- push
def test_push_without_a_token_is_one_line_saying_what_to_do(stored, monkeypatch, capsys):
    import huggingface_hub

    store, _ = stored
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["export", "pets", "--push", "me/pets", "--store", str(store.root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Hugging Face token" in err and "hf auth login" in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["export", "pets", "--push", "me/pets", "--store", str(store.root)]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_push_uploads_the_adapter_folder(stored, monkeypatch, capsys):
    import huggingface_hub

    store, _ = stored
    calls = {}
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo, **kw: calls.setdefault("create", (repo, kw)))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kw: calls.setdefault("upload", kw))
    assert main(["export", "pets", "--push", "me/pets", "--private", "--store", str(store.root)]) == 0
    assert "pushed pets to https://huggingface.co/me/pets" in capsys.readouterr().out
    assert calls["create"] == ("me/pets", {"token": "hf_test", "private": True, "exist_ok": True})
    upload = calls["upload"]
    assert upload["repo_id"] == "me/pets" and upload["token"] == "hf_test"
    assert upload["folder_path"] == str(store.path("pets").resolve())
    assert "adapter_model.safetensors" in upload["allow_patterns"] and "shoplora.json" not in upload["allow_patterns"]

    def refused(**kw):
        raise RuntimeError("403 Forbidden: you cannot write to me/pets\nmore detail")

    monkeypatch.setattr(huggingface_hub, "upload_folder", refused)
    assert main(["export", "pets", "--push", "me/pets", "--store", str(store.root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "403 Forbidden" in err and "write access" in err


def test_export_argument_mistakes_are_one_line(stored, capsys):
    store, _ = stored
    assert main(["export", "pets", "--for", "tgi", "out", "--store", str(store.root)]) == 2
    assert "--for vllm OUT" in capsys.readouterr().err
    assert main(["export", "nope", "--for", "vllm", "x", "--store", str(store.root)]) == 2
    assert "no adapter called 'nope'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------- chat
def test_chat_classifies_each_piped_line_until_quit(stored, tiny_base, monkeypatch, capsys):
    store, adapter = stored
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{TEXTS[0]}\n\n{TEXTS[1]}\n/quit\nnever read\n"))
    assert main(["chat", "pets", "--store", str(store.root), "--model", tiny_base.model_id]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and "/quit or Ctrl-D" in err
    for line, prediction in zip(lines, adapter.predict(TEXTS[:2])):
        assert line.startswith(f"{prediction.label}  (confidence {prediction.confidence:.2f}")


def test_chat_streams_answers_and_ends_at_end_of_input(stored, tiny_base, monkeypatch, capsys):
    store, _ = stored
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello there\n"))
    assert (
        main(["chat", "answers", "--store", str(store.root), "--model", tiny_base.model_id, "--max-new-tokens", "4"])
        == 0
    )
    assert capsys.readouterr().out.endswith("\n")
