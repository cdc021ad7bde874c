"""Plain functions the test modules share; the fixtures are in conftest.py. Test modules import from here, never from
each other."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "tiny.yaml"


def write_examples(path: Path, examples: Sequence) -> Path:
    """`examples` (prompts.Example) as a JSONL data file at `path`, one object a line, as a user writes one."""
    path.write_text("\n".join(json.dumps(e.to_dict()) for e in examples))
    return path


def adapt_args(
    data: Path, *options: str, labels: Sequence[str], steps: int, store: Path | str, model: Path
) -> list[str]:
    """`shoplora adapt` of `data` with these labels for `steps` steps from PEFT's standard init (the shipped inits
    are for the real model, not the tiny one), saved in `store`; `options` add the rest (`--instruction`, ...)."""
    return [
        "adapt",
        str(data),
        *options,
        "--init",
        "none",
        "--steps",
        str(steps),
        "--labels",
        ",".join(labels),
        "--store",
        str(store),
        "--model",
        str(model),
    ]


def save_init(adapter, path: Path, record) -> Path:
    """`adapter`'s LoRA weights written at `path` as an init folder (what meta-training writes) for its base."""
    from adapters.files import write_lora_dir

    return write_lora_dir(
        path,
        state=adapter.state(),
        settings=adapter.settings,
        base_model_id=adapter.base.model_id,
        base_fingerprint=adapter.base.fingerprint,
        record=record,
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a launcher that must be told its port before it starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def meta_train_in_two_processes(*overrides: str) -> dict[str, str]:
    """`accelerate launch` of train.meta on configs/tiny.yaml with `overrides` in 2 processes on the CPU (joined over
    gloo); the SHA-256 of the LoRA tensors each process printed at the end, by rank ("0", "1")."""
    command = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "train.meta",
        str(TINY),
        *overrides,
    ]
    # one thread a process: two processes share the cores; no GPU even where there is one (the CPU path is tested)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(re.findall(r"process (\d) of 2: LoRA sha256 ([0-9a-f]{64})", done.stdout))
