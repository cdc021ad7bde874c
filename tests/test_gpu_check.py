"""benchmarks/gpu_check.py on a machine without a GPU: a clear refusal, and its 7B-shape stage at a tiny shape."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run")
def test_without_cuda_it_stops_at_once_and_says_where_to_run_it(gpu_check, capsys, tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "figures.json")]) == 2
    message = capsys.readouterr().err
    assert "needs a CUDA GPU" in message and "docs/gpu.md" in message
    assert not (tmp_path / "figures.json").exists()


def test_the_7b_shape_is_its_published_one_without_a_download(gpu_check):
    shape = gpu_check.seven_b_shape()
    assert shape["hidden_size"] == 3584 and shape["num_hidden_layers"] == 28 and shape["vocab_size"] == 152064


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="the NF4 shape check needs bitsandbytes")
def test_the_qlora_shape_stage_trains_a_random_nf4_model(gpu_check):
    """The qlora_7b stage's code at a tiny shape on the CPU: NF4 layers everywhere but the head, LoRA on all of
    them, checkpointed inner steps with finite losses."""
    import bitsandbytes as bnb

    tiny = {
        **gpu_check.QWEN25_7B,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 256,
        "source": "tiny",
    }
    base = gpu_check.random_nf4_base(tiny, "cpu")
    layers = [m for m in base.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 14 and not isinstance(base.model.lm_head, bnb.nn.Linear4bit)
    settings = {
        "inner_batch_size": 2,
        "max_length": 32,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_targets": "all-linear",
        "gradient_checkpointing": True,
    }
    result = gpu_check.qlora_step(base, settings, "cpu", steps=2)
    assert result["batch"] == "2 x 32" and len(result["losses"]) == 2
    assert all(math.isfinite(loss) for loss in result["losses"]) and result["tokens_per_second"] > 0
    assert sum("lora_A" in name for name, _ in base.peft.named_parameters()) == 14
