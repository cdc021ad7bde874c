"""The README's Python API snippet runs as written on the embedded model (slow: it adapts three times)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def python_api_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_python_api_snippet_runs_as_written(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)  # the snippet's relative paths: examples/ and ./adapters_store
    namespace: dict = {}
    exec(compile(python_api_snippet(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    adapter, again = namespace["adapter"], namespace["again"]
    assert adapter.scenarios == ["custom", "warranty"] and adapter.spec.labels == ("yes", "no")
    first = adapter.scenario("custom")
    assert "damaged_item" in first.spec.labels  # the continual update's new label joined the first scenario
    texts = ["where is my parcel??", "please cancel my order"]
    saved = again.predict(texts)  # the version saved before the updates, reloaded from the store
    assert {p.label for p in saved} <= {"where_is_my_order", "return_item", "cancel_order"}
    assert (tmp_path / "adapters_store" / "acme-returns" / "adapter_model.safetensors").is_file()
