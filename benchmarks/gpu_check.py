"""One command for a CUDA machine: everything ShopLoRA has not yet been able to check without a GPU, in one JSON.

Stages, each in a process of its own (a crash or an out-of-memory in one does not hide the others' figures):
  tests        the gpu-marked tests (pytest -m gpu on the files that have them)
  meta_step    benchmarks/meta_step.py on the embedded model in bf16: tokens/s of ShopLoRA's inner step vs plain PEFT,
               Reptile/FOMAML outer-step overhead, peak memory
  qlora_7b     configs/gpu-7b-qlora.yaml's model shape in NF4 (random weights built from its config: no download),
               LoRA on all linear layers, gradient checkpointing, 3 inner steps of 8 x 512 tokens: peak GPU memory
               (the config aims at 10 GiB) and tokens/s
  embedded_full  2 outer steps of configs/embedded-full.yaml: seconds per outer step, and the full run projected
Run: `python benchmarks/gpu_check.py [--out runs/gpu-check.json] [--only STAGE ...]` from the project root (docs/gpu.md
says how to get the project onto a GPU machine). Without CUDA it stops at once with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("tests", "meta_step", "qlora_7b", "embedded_full")
TIMEOUT = {"tests": 240, "meta_step": 240, "qlora_7b": 240, "embedded_full": 240}  # seconds: all four fit 15 min
# Qwen2.5-7B-Instruct's architecture (its config.json), used when the model is not on disk: the shape decides the
# memory, the weights do not.
QWEN25_7B = {
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
NO_CUDA = (
    "benchmarks/gpu_check.py needs a CUDA GPU, and torch {torch} sees none here ({why}). Run it on a machine "
    "with one: docs/gpu.md says how."
)


def cuda_problem() -> str | None:
    """Why this machine cannot run the check, or None when it can."""
    import torch

    if torch.version.cuda is None:
        return NO_CUDA.format(torch=torch.__version__, why="this torch is a CPU-only build")
    if not torch.cuda.is_available():
        return NO_CUDA.format(torch=torch.__version__, why=f"built for CUDA {torch.version.cuda}, but no device")
    return None


# ------------------------------------------------------------------------------------------------ the stages
def stage_tests(out: Path) -> dict:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    return {
        "ok": done.returncode == 0,
        "files": files,
        "summary": summary,
        "output_tail": (done.stdout + done.stderr)[-3000:],
    }


def stage_meta_step(out: Path) -> dict:
    figures = out.parent / "meta_step.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/meta_step.py", "--dtype", "bfloat16", "--json", str(figures)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    result = {"ok": done.returncode == 0, "printed": done.stdout[-3000:]}
    if figures.is_file():
        result["figures"] = json.loads(figures.read_text())
    if done.returncode:
        result["error"] = done.stderr[-3000:]
    return result


def seven_b_shape(config_path: Path = ROOT / "configs" / "gpu-7b-qlora.yaml") -> dict:
    """The architecture of the config's base model: its config.json when it is on disk, else Qwen2.5-7B's."""
    import yaml

    base_model = yaml.safe_load(config_path.read_text())["base_model"]
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(base_model, local_files_only=True).to_dict() | {"source": base_model}
    except (OSError, ValueError):
        return {**QWEN25_7B, "source": f"{base_model}'s published shape (QWEN25_7B in this file), random weights"}


def random_nf4_base(shape: dict, device: str):
    """A base model of `shape` with random weights, its linear layers NF4 as load_base makes them (bitsandbytes
    Linear4bit, double quantisation, the LM head kept in bf16). Built in bf16 on `device`, then quantised layer by
    layer, so it needs the bf16 model's memory once (15 GiB for 7B) and no download."""
    import bitsandbytes as bnb
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from adapters.base import Base

    fields = {k: v for k, v in shape.items() if k not in ("source", "model_type")}
    config = AutoConfig.for_model(shape["model_type"], **fields)
    compute = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=compute)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and f"{name}.{child_name}".lstrip(".") != "lm_head":
                four_bit = bnb.nn.Linear4bit(
                    child.in_features,
                    child.out_features,
                    bias=child.bias is not None,
                    compute_dtype=compute,
                    quant_type="nf4",
                    compress_statistics=True,
                    device="meta",
                )
                four_bit.weight = bnb.nn.Params4bit(
                    child.weight.data, requires_grad=False, quant_type="nf4", compress_statistics=True, module=four_bit
                ).to(device)
                if child.bias is not None:
                    four_bit.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
                setattr(module, child_name, four_bit)
    for param in model.parameters():
        param.requires_grad_(False)
    if not device.startswith("cuda"):
        from adapters.base import keep_nf4_layout_on_cpu

        keep_nf4_layout_on_cpu(model)  # as load_base does: right gradients on any CPU
    return Base(model, None, shape["source"], shape["source"], "4bit")


def qlora_step(base, settings: dict, device: str, steps: int = 3) -> dict:
    """ShopLoRA's inner step (adapters.training) on random token batches of the config's size; peak memory."""
    import random

    import torch

    from adapters.compat import enable_checkpointing
    from adapters.lora import LoraSettings, add_lora
    from adapters.training import InnerLoop, train_steps
    from prompts.render import IGNORE, Rendered

    batch, length, answer = settings["inner_batch_size"], settings["max_length"], 16  # tokens
    if settings.get("gradient_checkpointing"):
        enable_checkpointing(base.model)
    model = add_lora(
        base,
        "check",
        LoraSettings(r=settings["lora_r"], alpha=settings["lora_alpha"], targets=settings["lora_targets"]),
    )
    generator = torch.Generator().manual_seed(0)
    vocab = base.model.config.vocab_size
    examples = []
    for _ in range(batch):
        ids = torch.randint(0, vocab, (length,), generator=generator).tolist()
        examples.append(Rendered(ids, [IGNORE] * (length - answer) + ids[-answer:]))
    loop = InnerLoop(steps=1, batch_size=batch, max_length=length)
    train_steps(model, examples, loop, pad_id=0, rng=random.Random(0), name="check")  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    losses = train_steps(
        model,
        examples,
        InnerLoop(steps=steps, batch_size=batch, max_length=length),
        pad_id=0,
        rng=random.Random(1),
        name="check",
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result = {
        "batch": f"{batch} x {length}",
        "steps": steps,
        "seconds_per_step": round(seconds / steps, 3),
        "tokens_per_second": round(batch * length * steps / seconds),
        "losses": losses,
    }
    if device.startswith("cuda"):
        result["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def stage_qlora_7b(out: Path) -> dict:
    import torch
    import yaml

    settings = yaml.safe_load((ROOT / "configs" / "gpu-7b-qlora.yaml").read_text())
    shape = seven_b_shape()
    base = random_nf4_base(shape, "cuda")
    torch.cuda.empty_cache()
    weights = round(torch.cuda.memory_allocated() / 2**30, 2)
    return {"ok": True, "shape": shape["source"], "weights_gib": weights, **qlora_step(base, settings, "cuda")}


def stage_embedded_full(out: Path) -> dict:
    folder, steps = out.parent / "embedded-full", 2
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "train.meta",
            "configs/embedded-full.yaml",
            f"output_dir={folder}",
            f"outer_steps={steps}",
            "validation_tasks=0",
            "save_every=0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    result = {"ok": done.returncode == 0, "output_tail": (done.stdout + done.stderr)[-2000:]}
    record = folder / "init" / "shoplora.json"
    if record.is_file():
        made = json.loads(record.read_text())
        per_step = made["seconds"] / made["outer_steps"]
        import yaml

        planned = yaml.safe_load((ROOT / "configs" / "embedded-full.yaml").read_text())["outer_steps"]
        result.update(
            seconds_per_outer_step=round(per_step, 1),
            planned_outer_steps=planned,
            projected_hours=round(per_step * planned / 3600, 1),
            device=made.get("device"),
        )
    return result


# ------------------------------------------------------------------------------------------------ the command
def run_stage(name: str, out: Path) -> dict:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--stage", name, "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT[name],
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"stopped after {TIMEOUT[name]} s", "seconds": TIMEOUT[name]}
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        result = {"ok": False, "error": (done.stdout + done.stderr)[-3000:]}
    return {**result, "seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/gpu-check/gpu-check.json", help="the JSON of figures")
    parser.add_argument("--only", nargs="+", choices=STAGES, help="run these stages only")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # one stage, in a child process
    args = parser.parse_args(argv)
    problem = cuda_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    out = (ROOT / args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.stage:
        print(json.dumps(globals()[f"stage_{args.stage}"](out)))
        return 0
    import torch
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:  # on a machine that carries wheels on PYTHONPATH instead of installing them
            return getattr(sys.modules.get(package) or __import__(package), "__version__", None)

    report = {
        "date": str(date.today()),
        "device": torch.cuda.get_device_name(),
        "cuda": torch.version.cuda,
        "versions": {p: installed(p) for p in ("torch", "transformers", "peft", "accelerate")},
        "stages": {},
    }
    for name in args.only or STAGES:
        print(f"gpu_check: {name} ...", flush=True)
        report["stages"][name] = run_stage(name, out)
        out.write_text(json.dumps(report, indent=1))  # after each stage: a later hang keeps what was measured
        print(f"gpu_check: {name}: {'ok' if report['stages'][name].get('ok') else 'FAILED'}", flush=True)
    print(f"gpu_check: figures in {out}")
    return 0 if all(stage.get("ok") for stage in report["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
