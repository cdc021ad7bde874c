"""Every benchmark script runs end to end on the tiny model and prints its ratio line, so none can rot unnoticed.
The figures themselves are not checked: a tiny random model's timings mean nothing (the README's come from the
embedded model). predict.py is left out: its 100-label prompt is over the tiny model's 1024-token context."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"

pytestmark = pytest.mark.slow  # about 90 s of subprocesses


@pytest.mark.parametrize(
    "script, args, ratio",
    [
        ("meta_step.py", ["--batches", "1", "--batch-size", "2"], "tokens/s"),
        ("adapt.py", ["--sizes", "16"], "x"),
        ("continual.py", ["--init", "none", "--k", "4", "--n-test", "4", "--steps", "1", "--modes", "own"], "BWT"),
        ("serve.py", ["--tokens", "2", "--repeats", "1"], "x"),
    ],
)
def test_benchmark_runs_on_the_tiny_model(tiny_model_dir, script, args, ratio):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--model", str(tiny_model_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=BENCHMARKS.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "benchmark" in done.stdout and ratio in done.stdout
