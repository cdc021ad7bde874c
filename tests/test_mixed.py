"""serve.mixed on every kind of base ShopLoRA loads: each row of a mixed batch equals its adapter run alone."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from adapters import load_base
from adapters.generation import base_only
from adapters.lora import LoraSettings, add_lora, load_lora_state, lora_state
from serve.mixed import mixed_lora

NF4 = pytest.param(
    "nf4",
    marks=pytest.mark.skipif(
        importlib.util.find_spec("bitsandbytes") is None,
        reason="the NF4 base needs bitsandbytes (pip install 'shoplora[4bit]')",
    ),
)
# (load_base arguments, logits tolerance): a row alone and in a batch take different matmul paths; in bf16 that
# difference is rounded at every layer (0 seen with torch 2.13, but one bf16 step of a logit is about 0.03).
BASES = {
    "fp32": ({"dtype": "float32"}, 1e-4),
    "bf16": ({"dtype": "bfloat16"}, 0.05),
    "nf4": ({"dtype": "float32", "quantization": "4bit"}, 1e-4),
}


@pytest.mark.parametrize("kind", ["fp32", "bf16", NF4])
def test_each_row_of_a_mixed_batch_equals_its_adapter_alone(tiny_model_dir, kind):
    options, tolerance = BASES[kind]
    base = load_base(str(tiny_model_dir), device="cpu", **options)
    names = ["first", "second"]
    for seed, name in enumerate(names):
        model = add_lora(base, name, LoraSettings(r=4, alpha=8))
        generator = torch.Generator().manual_seed(seed)
        load_lora_state(
            model,
            {key: torch.randn(t.shape, generator=generator) * 0.4 for key, t in lora_state(model, name).items()},
            name,
        )
    rows = [names[0], None, names[1], names[0]]
    ids = torch.tensor(
        [
            base.tokenizer(text)["input_ids"][:6]
            for text in ["where is my parcel", "red running shoes", "refund please now", "the zip is stuck"]
        ]
    )
    model.eval()
    with torch.inference_mode():
        with mixed_lora(model, rows):
            mixed = model(input_ids=ids).logits.float()
        alone = []
        for row, name in enumerate(rows):
            if name is None:
                with base_only(base):
                    alone.append(model(input_ids=ids[row : row + 1]).logits[0].float())
            else:
                model.set_adapter(name)
                alone.append(model(input_ids=ids[row : row + 1]).logits[0].float())
    alone = torch.stack(alone)
    torch.testing.assert_close(mixed, alone, atol=tolerance, rtol=0)
    # The adapters change the logits far beyond the tolerance, so a row served by the bare base would fail.
    with torch.inference_mode(), base_only(base):
        bare = model(input_ids=ids).logits.float()
    for row in (0, 2, 3):
        assert (alone[row] - bare[row]).abs().max() > 10 * tolerance
