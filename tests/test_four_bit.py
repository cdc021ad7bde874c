"""The 4-bit (NF4, bitsandbytes) path on the CPU: right gradients, adapt/save/reload/serve, meta-training, evaluation.

These run everywhere bitsandbytes >= 0.46.1 is installed (`pip install -e '.[dev]'` brings it), on the tiny Llama
of conftest.py quantised at load. The GPU path is the same code with CUDA kernels (tests marked gpu).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from adapters import AdapterStore, ModelLoadError, adapt, load_base
from adapters.files import read_lora_dir
from adapters.record import AdapterRecord
from adapters.lora import LoraSettings, add_lora, lora_parameters, lora_state
from adapters.training import answer_loss, collate
from prompts import suite
from prompts.render import render

from tests.helpers import meta_train_in_two_processes

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None,
    reason="the NF4 tests need bitsandbytes >= 0.46.1: pip install -e '.[dev]'",
)

ROOT = Path(__file__).parent.parent
TASK = suite.get_task("service-intent-petshop")
EXAMPLES = TASK.examples("train")[:16]
TEST_INPUTS = [e.input for e in TASK.examples("test")[:6]]


def nf4(model_dir: Path):
    return load_base(str(model_dir), device="cpu", quantization="4bit")


def four_bit_layers(model) -> list:
    import bitsandbytes as bnb

    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def dequantised_copy(model_dir: Path, quantized) -> object:
    """An fp32 base whose linear weights are exactly the NF4 base's, dequantised: the reference for gradients."""
    import bitsandbytes.functional as F

    reference = load_base(str(model_dir), device="cpu")
    weights = {}
    for name, module in quantized.model.named_modules():
        if module in four_bit_layers(quantized.model):
            weights[name + ".weight"] = F.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
    assert weights and not reference.model.load_state_dict(weights, strict=False).unexpected_keys
    return reference


def lora_gradients(model, batch) -> tuple[float, dict[str, torch.Tensor]]:
    """The LoRA gradients of one training step, after an eval-mode forward without gradients, as meta-training's
    validation and adaptation's held-out checks do between steps (that forward is what bitsandbytes repacked on)."""
    params = lora_parameters(model, "task")
    model.eval()
    with torch.no_grad():
        answer_loss(model, batch)
    model.train()
    for param in params.values():
        param.requires_grad_(True)
    loss = answer_loss(model, batch)
    loss.backward()
    grads = {key: param.grad.clone() for key, param in params.items()}
    for param in params.values():
        param.requires_grad_(False)
        param.grad = None
    model.eval()
    return loss.item(), grads


def test_nf4_lora_gradients_equal_a_dequantised_fp32_reference(tiny_model_dir):
    quantized = nf4(tiny_model_dir)
    assert len(four_bit_layers(quantized.model)) == 14  # every linear layer of both blocks (the head is tied)
    reference = dequantised_copy(tiny_model_dir, quantized)
    plain = load_base(str(tiny_model_dir), device="cpu")
    generator = torch.Generator().manual_seed(0)
    state = None
    for base in (quantized, reference, plain):
        model = add_lora(base, "task", LoraSettings(r=4, alpha=8))
        state = state or {
            key: torch.randn(t.shape, generator=generator) * 0.1 for key, t in lora_state(model, "task").items()
        }  # B != 0, so A gets a gradient too
        from adapters.lora import load_lora_state

        load_lora_state(model, state, "task")
    batch = collate([render(TASK.spec, e, quantized.tokenizer) for e in EXAMPLES[:4]], quantized.tokenizer.pad_token_id)
    loss, grads = lora_gradients(quantized.peft, batch)
    reference_loss, reference_grads = lora_gradients(reference.peft, batch)
    plain_loss, _ = lora_gradients(plain.peft, batch)
    assert loss == pytest.approx(reference_loss, rel=1e-5)
    assert abs(loss - plain_loss) > 1e-4  # the weights really are 4-bit: the unquantised model's loss differs
    for key, grad in reference_grads.items():
        assert grad.abs().max() > 0, key
        torch.testing.assert_close(grads[key], grad, rtol=1e-4, atol=1e-6)


def test_the_cpu_repack_of_bitsandbytes_stays_off(tiny_model_dir, monkeypatch):
    # bitsandbytes 0.49-0.50 repack NF4 weights on AVX512-BF16 CPUs at the first no-grad eval forward; training
    # after that computes wrong LoRA gradients. Pretend this CPU has AVX512-BF16: load_base must turn it off.
    modules = importlib.import_module("bitsandbytes.nn.modules")
    if not hasattr(modules, "has_avx512bf16"):
        pytest.skip("this bitsandbytes has no CPU repack")
    monkeypatch.setattr(modules, "has_avx512bf16", lambda: True)
    quantized = nf4(tiny_model_dir)
    with torch.no_grad():
        quantized.model(input_ids=torch.tensor([[1, 2, 3, 4]]))
    for layer in four_bit_layers(quantized.model):
        assert not layer.support_avx512bf16_for_cpu
        assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)


def test_an_old_bitsandbytes_is_refused_on_the_cpu_with_the_fix(tiny_model_dir, monkeypatch):
    monkeypatch.setattr("importlib.metadata.version", lambda name: "0.45.5")
    with pytest.raises(ModelLoadError, match=r"needs bitsandbytes >= 0\.46\.1.*pip install 'shoplora\[4bit\]'"):
        nf4(tiny_model_dir)


def test_adapt_save_reload_and_serve_on_an_nf4_base(tiny_model_dir, tmp_path):
    from serve.engine import Engine

    quantized = nf4(tiny_model_dir)
    adapter = adapt(quantized, EXAMPLES, spec=TASK.spec, init=None, steps=4, lr=1e-2)
    assert adapter.record.fit.steps_run >= 1 and all(loss == loss for loss in adapter.record.fit.train_loss)  # no NaN
    labels = [p.label for p in adapter.predict(TEST_INPUTS)]
    assert set(labels) <= set(TASK.spec.labels)
    store = AdapterStore(tmp_path)
    store.save(adapter, "pets")
    again = store.load("pets", quantized)
    assert [p.label for p in again.predict(TEST_INPUTS)] == labels
    engine = Engine(quantized, store, meta_init=None)
    try:
        assert [p.label for p in engine.classify(TEST_INPUTS, "pets")] == labels
    finally:
        engine.close()


def test_the_engine_mixes_adapters_on_an_nf4_base(tiny_model_dir, tmp_path):
    """A generation batch over two adapters and the base gives each row what it gets alone."""
    from adapters import Adapter
    from adapters.lora import load_lora_state
    from prompts import TaskSpec
    from serve.engine import Engine

    quantized = nf4(tiny_model_dir)
    store = AdapterStore(tmp_path)
    for seed, name in enumerate(["kind", "brief"], start=1):
        spec = TaskSpec(name, "custom", "generate", f"Reply to the customer ({name}).")
        adapter = Adapter(quantized, spec, None, LoraSettings(r=4), AdapterRecord(spec=spec, init="random"))
        generator = torch.Generator().manual_seed(seed)
        with quantized.lock:
            load_lora_state(
                quantized.peft,
                {key: torch.randn(t.shape, generator=generator) * 0.4 for key, t in adapter.state().items()},
                adapter.peft_name,
            )
        store.save(adapter, name)
        adapter.unload()
    engine = Engine(quantized, store, meta_init=None)
    try:
        requests = [([{"role": "user", "content": "where is my parcel?"}], name) for name in ("kind", None, "brief")]
        mixed = engine.generate_batch(requests, max_new_tokens=6, min_new_tokens=6)
        alone = [engine.generate_batch([request], max_new_tokens=6, min_new_tokens=6)[0] for request in requests]
    finally:
        engine.close()
    assert mixed == alone and len(set(alone)) == 3  # three different answers, each as alone


def meta_config(model_dir: Path, output: Path, *overrides: str):
    from train.config import load_config

    return load_config(
        ROOT / "configs" / "tiny.yaml",
        [
            f"base_model={model_dir}",
            f"output_dir={output}",
            "quantization=4bit",
            "outer_steps=2",
            "validation_tasks=0",
            "save_every=0",
            *overrides,
        ],
    )


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointing"])
@pytest.mark.parametrize("algorithm", ["reptile", "fomaml", "multitask"])
def test_meta_training_on_an_nf4_base(tiny_model_dir, tmp_path, algorithm, checkpointing):
    from train.meta import run

    folder = run(
        meta_config(
            tiny_model_dir, tmp_path, f"algorithm={algorithm}", f"gradient_checkpointing={str(checkpointing).lower()}"
        )
    )
    files = read_lora_dir(folder)
    assert files.record.config["quantization"] == "4bit" and files.record.outer_steps == 2
    assert all(torch.isfinite(t).all() for t in files.state.values())
    assert any(t.abs().max() > 0 for key, t in files.state.items() if "lora_B" in key)  # B starts at 0: it moved


def test_evaluation_loads_the_base_the_init_was_trained_on(tiny_model_dir, tmp_path):
    import train.evaluate as evaluate
    from train.meta import run

    init = run(meta_config(tiny_model_dir, tmp_path / "init", "algorithm=multitask", "outer_steps=1"))
    results = evaluate.run(
        evaluate.load_eval_config(
            ROOT / "configs" / "eval" / "quick.yaml",
            [
                f"base_model={tiny_model_dir}",
                f"multitask_init={init}",
                f"output_dir={tmp_path / 'eval'}",
                "tasks=[risk-return-abuse]",
                "methods=[lora_multitask]",
                "shots=[4]",
                "seeds=1",
                "n_test=4",
                "steps=1",
                "curve_k=4",
                "curve_steps=[0]",
                "save_adapter=null",
            ],
        )
    )
    assert results["base_model"]["quantization"] == "4bit" and results["base_model"]["dtype"] == "float32"
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["base_model"]["quantization"] == "4bit"


@pytest.mark.slow  # about a minute on 2 busy cores: two processes each import torch and load the model
def test_two_processes_on_an_nf4_base_match_one(tiny_model_dir, tmp_path):
    """`accelerate launch` with 2 gloo processes on the NF4 base: both end with the weights one process gets alone."""
    from train.meta import run

    digests = meta_train_in_two_processes(
        f"base_model={tiny_model_dir}",
        "quantization=4bit",
        "outer_steps=2",
        "algorithm=fomaml",
        "validation_tasks=0",
        "save_every=0",
        f"output_dir={tmp_path / 'two'}",
    )
    record = read_lora_dir(tmp_path / "two" / "init").record
    assert digests.keys() == {"0", "1"} and set(digests.values()) == {record.sha256}
    assert record.processes == 2 and record.config["quantization"] == "4bit"
    alone = read_lora_dir(run(meta_config(tiny_model_dir, tmp_path / "one", "algorithm=fomaml")))
    two = read_lora_dir(tmp_path / "two" / "init")
    for key, tensor in alone.state.items():
        torch.testing.assert_close(two.state[key], tensor, rtol=1e-4, atol=1e-6)
