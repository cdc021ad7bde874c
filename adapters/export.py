"""Adapters out of ShopLoRA: merged into a full model, as a folder vLLM / LoRAX serve, or pushed to the Hub.

Example: `merge(store.read("acme-returns"), load_base(), "acme-merged")` writes a transformers model folder whose
logits equal the base model's with the adapter; `vllm_folder(store.read("acme-returns"), "acme-vllm")` writes what
`vllm serve BASE --enable-lora --lora-modules acme-returns=acme-vllm` loads. Every folder is written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from prompts import ShopLoRAError
from prompts.atomic import replace_dir, staging_dir
from prompts.render import system_prompt

from .base import forget_loaded
from .card import hub_id, model_card
from .files import CARD_FILE, CONFIG_FILE, RECORD_FILE, SCENARIOS_DIR, WEIGHTS_FILE, LoraFiles, module_names
from .lora import LoraSettings
from .record import AdapterRecord

# What vLLM documents for LoRA adapters (vllm/config/lora.py, vllm/lora/peft_helper.py), which LoRAX shares:
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the choices of --max-lora-rank (default 16)
VLLM_DEFAULT_MAX_LORA_RANK = 16
VLLM_LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # Llama-style
# PEFTHelper refuses modules_to_save and DoRA, and a bias needs --enable-lora-bias: none of them is written.
VLLM_CONFIG = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "bias": "none",
    "modules_to_save": None,
    "use_dora": False,
    "use_rslora": False,
    "fan_in_fan_out": False,
    "inference_mode": True,
}


class ExportError(ShopLoRAError):
    """An adapter that cannot be exported as asked, or a target that is in the way."""


def _write_folder(out: str | Path, overwrite: bool, fill: Any) -> Path:
    """`fill(staging)` writes the folder, which then replaces `out` in one step (only with `overwrite`)."""
    out = Path(out)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite (overwrite=True) or another folder")
    with staging_dir(out) as staging:
        fill(staging)
        replace_dir(staging, out)
    return out


# ------------------------------------------------------------------------------------------------------ merge
def merge(files: LoraFiles, base: Any, out: str | Path, *, overwrite: bool = False) -> Path:
    """The base model with the adapter merged into its weights (PEFT's `merge_and_unload`), saved as safetensors
    with the tokenizer: a plain transformers model folder. The merge changes `base`'s weights: load the base again
    to use it without the adapter afterwards."""
    from peft import PeftModel

    if base.peft is not None:
        raise ExportError("merge needs a base model with no adapters on it: load_base(...) a fresh one")
    if getattr(base.model, "is_loaded_in_4bit", False) or getattr(base, "quantization", None):
        raise ExportError(
            "merging into a 4-bit base model loses the adapter to rounding; load the base in "
            "float32 or bfloat16 (no --quantization) to merge"
        )
    forget_loaded(base)  # its weights change: load_adapter must not pick it up again
    merged = PeftModel.from_pretrained(base.model, str(files.path)).merge_and_unload()
    base.model = merged

    def fill(staging: Path) -> None:
        merged.save_pretrained(staging, safe_serialization=True)
        base.tokenizer.save_pretrained(staging)
        record = {**files.record.to_json(), "merged_from": files.path.name, "merged_into": files.base_model_id}
        record.pop("replay", None)  # the user's examples stay in the store, not in a model meant to be shared
        (staging / "shoplora.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        (staging / CARD_FILE).write_text(_merged_card(files))

    return _write_folder(out, overwrite, fill)


def _merged_card(files: LoraFiles) -> str:
    spec = files.record.spec if isinstance(files.record, AdapterRecord) else None
    lines = [
        "---",
        *([f"base_model: {files.base_model_id}"] if hub_id(files.base_model_id) else []),
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags:",
        "- shoplora",
        "- merged-lora",
        "---",
        "",
        f"# {files.path.name} (merged)",
        "",
        f"`{files.base_model_id}` with the ShopLoRA adapter `{files.path.name}` merged into its weights "
        "(`merge_and_unload`): load it with `AutoModelForCausalLM.from_pretrained(<this folder>)`.",
    ]
    if spec:
        lines += ["", "System prompt (use it exactly):", "", "```text", system_prompt(spec), "```"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------- vllm
def vllm_rank(r: int) -> int:
    """The smallest `--max-lora-rank` choice that loads rank `r`."""
    fits = [choice for choice in VLLM_MAX_LORA_RANKS if choice >= r]
    if not fits:
        raise ExportError(
            f"LoRA rank {r} is over vLLM's largest --max-lora-rank ({VLLM_MAX_LORA_RANKS[-1]}); "
            "adapt again with a smaller rank"
        )
    return fits[0]


def vllm_problems(settings: LoraSettings, state: dict[str, Any]) -> list[str]:
    """Why vLLM / LoRAX would refuse these LoRA weights for a Llama-style model (empty: they load)."""
    problems = []
    unsupported = sorted(set(module_names(state)) - set(VLLM_LLAMA_MODULES))
    if unsupported:
        problems.append(f"LoRA on {', '.join(unsupported)}: vLLM supports only {', '.join(VLLM_LLAMA_MODULES)}")
    if any(not key.endswith((".lora_A.weight", ".lora_B.weight")) for key in state):
        problems.append("tensors other than lora_A / lora_B (modules_to_save or biases)")
    if settings.r > VLLM_MAX_LORA_RANKS[-1]:
        problems.append(f"rank {settings.r} is over vLLM's largest --max-lora-rank {VLLM_MAX_LORA_RANKS[-1]}")
    return problems


def vllm_folder(files: LoraFiles, out: str | Path, *, served_name: str | None = None, overwrite: bool = False) -> Path:
    """A folder vLLM and LoRAX load with `--lora-modules NAME=OUT`: PEFT's two files with explicit Llama target
    modules, no modules_to_save, no DoRA or bias, and a card with the system prompt and labels to send."""
    from safetensors.torch import save_file

    problems = vllm_problems(files.settings, files.state)
    if problems:
        raise ExportError(f"{files.path.name} cannot be served by vLLM: {'; '.join(problems)}")
    name = served_name or files.path.name
    config = {
        **VLLM_CONFIG,
        "r": files.settings.r,
        "lora_alpha": files.settings.alpha,
        "lora_dropout": 0.0,
        "target_modules": module_names(files.state),
        "base_model_name_or_path": files.base_model_id,
    }
    record = files.record
    if isinstance(record, AdapterRecord):  # the card of the exported folder: no examples, no other scenarios' weights
        record = replace(record, replay=[], scenarios={})

    def fill(staging: Path) -> None:
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        tensors = {key: t.detach().to("cpu").contiguous() for key, t in files.state.items()}
        save_file(tensors, staging / WEIGHTS_FILE, metadata={"format": "pt"})
        (staging / CARD_FILE).write_text(
            model_card(name, files.base_model_id, record) + "\n" + vllm_command(name, files, Path(out)) + "\n"
        )

    return _write_folder(out, overwrite, fill)


def vllm_command(name: str, files: LoraFiles, out: Path) -> str:
    """How to serve the exported folder with vLLM, and how to ask it (markdown)."""
    rank = vllm_rank(files.settings.r)
    flag = "" if rank <= VLLM_DEFAULT_MAX_LORA_RANK else f" --max-lora-rank {rank}"
    classify = isinstance(files.record, AdapterRecord) and files.record.spec.kind == "classify"
    lines = [
        "## Serve it with vLLM",
        "",
        "```bash",
        f"vllm serve {files.base_model_id} --enable-lora{flag} --lora-modules {name}={out}",
        "```",
        "",
        f'Then send requests with `"model": "{name}"` and the system prompt above as the system message.',
    ]
    if classify:
        lines.append(
            "vLLM generates text rather than scoring each label: constrain the answer to the labels with "
            'structured outputs (`"structured_outputs": {"choice": [...the labels...]}`; older vLLM: '
            '`"guided_choice"`), and expect rare differences from ShopLoRA\'s label scores.'
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- push
PUSHED = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, f"{SCENARIOS_DIR}/*/{CONFIG_FILE}", f"{SCENARIOS_DIR}/*/{WEIGHTS_FILE}")


def push(
    files: LoraFiles, repo: str, *, private: bool = False, with_record: bool = False, token: str | None = None
) -> str:
    """Upload the adapter folder to the Hub repo `repo` (created if missing) with `huggingface_hub.upload_folder`;
    returns the repo's URL. The PEFT files and the card go; shoplora.json, which holds a sample of the training
    examples, only with `with_record=True`."""
    import huggingface_hub

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise ExportError(
            "cannot push: HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it on a "
            "machine with network access and try again"
        )
    token = token or huggingface_hub.get_token()
    if not token:
        raise ExportError("cannot push: no Hugging Face token; run `hf auth login` (or set HF_TOKEN) first")
    allow = [*PUSHED, RECORD_FILE] if with_record else list(PUSHED)
    try:
        huggingface_hub.create_repo(repo, token=token, private=private, exist_ok=True)
        commit = huggingface_hub.upload_folder(
            repo_id=repo,
            folder_path=str(files.path.resolve()),
            token=token,
            allow_patterns=allow,
            commit_message=f"ShopLoRA adapter {files.path.name}",
        )
    except Exception as error:  # HTTP, network (httpx) or repo-name errors: one line, not a traceback
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(
            f"cannot push to {repo}: {first}; check the repo name, your token's write access and the network"
        ) from None
    return str(getattr(commit, "repo_url", None) or f"https://huggingface.co/{repo}")
