"""The benchmark scripts: their printed ratios are computed from the timings they measured (a scripted clock stands in
for time.perf_counter, so the expected figures are known), and every script runs end to end on the tiny model
(slow), so none can rot unnoticed. predict.py is left out: its 100-label prompt is over the tiny model's 1024-token
context."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


class ScriptedClock:
    """A perf_counter for code that times one thing at a time (start, end, start, end, ...): the n-th timed span
    lasts spans[n] seconds."""

    def __init__(self, spans: list[float]):
        self.spans, self.now, self.calls = list(spans), 0.0, 0

    def perf_counter(self) -> float:
        if self.calls % 2:  # the end of a span
            self.now += self.spans.pop(0)
        self.calls += 1
        return self.now


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, args: list[str], spans: list[float], monkeypatch, capsys, **replaced) -> str:
    """`name`.py's main() with `args`, its clock scripted by `spans` and its globals `replaced`; what it printed.
    Every span must be used."""
    script = load_script(name)
    for attribute, value in replaced.items():
        monkeypatch.setattr(script, attribute, value)
    clock = ScriptedClock(spans)
    monkeypatch.setattr(script, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    script.main()
    assert clock.spans == [] and clock.calls % 2 == 0, "the script timed fewer or more spans than scripted"
    return capsys.readouterr().out


def test_adapt_benchmark_divides_the_adapt_time_by_the_plain_loop_time(tiny_model_dir, monkeypatch, capsys):
    from adapters import adapt

    args = ["--model", str(tiny_model_dir), "--sizes", "16"]
    one_step = partial(adapt, steps=1)  # the figures are scripted: one training step (each way) is enough
    out = run_script("adapt", args, [10.0, 4.0], monkeypatch, capsys, adapt=one_step)
    line = next(line for line in out.splitlines() if line.strip().startswith("16 examples"))
    found = re.search(r"shoplora adapt\s+(\S+) s .*plain PEFT loop\s+(\S+) s -> (\S+)x the plain loop's time", line)
    assert found and found.groups() == ("10.0", "4.0", "2.50"), line


def test_serve_benchmark_ratios_come_from_its_timings(tiny_model_dir, monkeypatch, capsys):
    loads = [0.2, 0.4, 0.6, 0.8]  # first loads: 500 ms mean, 800 ms max
    switches = [0.01] * 200  # 10 ms each
    # one timed run each (--repeats 1): plain base, one adapter, 4 adapters mixed, 4 adapters one at a time
    variants = [1.0, 2.0, 2.5, 5.0]
    args = ["--model", str(tiny_model_dir), "--tokens", "2", "--repeats", "1"]
    out = run_script("serve", args, loads + switches + variants, monkeypatch, capsys)
    assert "first load: 500 ms mean, 800 ms max" in out and "switch: 10.00 ms mean" in out
    # 4 answers x 2 tokens = 8 tokens: 8, 4, 3.2 and 1.6 tokens/s; one adapter's 4 tokens/s is the unit
    rates = dict(re.findall(r"^(.+?)\s+(\d+\.\d) tokens/s", out, re.MULTILINE))
    assert rates == {
        "plain base, batch of 4": "8.0",
        "one adapter, batch of 4": "4.0",
        "4 adapters, one mixed batch": "3.2",
        "4 adapters, one request at a time": "1.6",
    }
    assert "(2.00x one adapter)" in out and "(0.40x one adapter)" in out
    assert (
        "mixed batch / one adapter: 0.80x (goal >= 0.7x); mixed batch / one request at a time: 2.00x; "
        "one adapter / plain base: 0.50x"
    ) in out


@pytest.mark.slow  # about 90 s of subprocesses
@pytest.mark.parametrize(
    "script, args, ratio",
    [
        ("meta_step.py", ["--batches", "1", "--batch-size", "2"], r"ratio \(ShopLoRA / plain\): \d+\.\d\dx"),
        ("adapt.py", ["--sizes", "16"], r"-> \d+\.\d\dx the plain loop's time"),
        (
            "continual.py",
            ["--init", "none", "--k", "4", "--n-test", "4", "--steps", "1", "--modes", "own"],
            r"BWT [+-]\d+\.\d points",
        ),
        ("serve.py", ["--tokens", "2", "--repeats", "1"], r"mixed batch / one adapter: \d+\.\d\dx"),
    ],
)
def test_benchmark_runs_on_the_tiny_model(tiny_model_dir, script, args, ratio):
    """The figures are not checked: a tiny random model's timings mean nothing (the README's come from the embedded
    model); the tests above check how they are computed."""
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
    assert "benchmark" in done.stdout and re.search(ratio, done.stdout), done.stdout[-2000:]
