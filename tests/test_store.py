"""The adapter store's reliability: overwrites a kill cannot lose, weights checked against their checksum and for
NaN, and what killed saves leave behind removed by the next save."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from adapters import AdapterFileError, AdapterStore, load_base
from adapters import files as adapter_files
from adapters.adapter import Adapter
from adapters.files import read_lora_dir, write_lora_dir
from adapters.lora import LoraSettings
from adapters.record import AdapterRecord, InitRecord, Scenario
from prompts import ShopLoRAError, suite
from prompts.atomic import STALE_AFTER, staging_prefix
from train import checkpoint

TASK = suite.get_task("service-intent-petshop")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return load_base(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def adapter(base):
    """PEFT's standard init is enough here: these tests are about files, not predictions."""
    return Adapter(base, TASK.spec, None, LoraSettings(r=4), AdapterRecord(spec=TASK.spec))


def save(adapter: Adapter, target: Path, version: int, **kwargs) -> Path:
    """`adapter`'s weights at `target` with `version` in the record, so a test can tell which save it reads."""
    return write_lora_dir(
        target,
        state=adapter.state(),
        settings=adapter.settings,
        base_model_id="tiny",
        record=InitRecord(extra={"version": version}),
        overwrite=True,
        **kwargs,
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".saving-" in p.name)


def dead_staging(target: Path) -> Path:
    """A staging folder named as one of a process of this machine that has exited (killed mid-save)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    prefix = staging_prefix(target).replace(f"saving-{os.getpid()}-", f"saving-{child.pid}-")
    return target.parent / f"{prefix}k1lled"


# ------------------------------------------------------------------------------------------- atomic overwrites
@pytest.mark.parametrize("moment", ["before", "after"])
def test_an_overwrite_interrupted_at_the_rename_leaves_a_complete_adapter(adapter, tmp_path, monkeypatch, moment):
    store = AdapterStore(tmp_path)
    store.save(adapter, "acme")
    target, real_replace, fired = store.path("acme"), os.replace, []

    def replace(src, dst):  # the first rename that touches the name: interrupted just before it, or just after
        touches = target in (Path(src), Path(dst)) and not fired
        if touches and moment == "before":
            fired.append(True)
            raise KeyboardInterrupt
        real_replace(src, dst)
        if touches and moment == "after":
            fired.append(True)
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        store.save(adapter, "acme", overwrite=True)
    assert fired and store.names() == ["acme"]
    assert store.read("acme").state.keys() == adapter.state().keys()  # complete: the old or the new version
    assert "error" not in store.list()[0]
    store.save(adapter, "acme", overwrite=True)  # and the next save goes through
    assert store.names() == ["acme"] and "error" not in store.list()[0] and leftovers(tmp_path) == []


KILLED_SAVE = """
import os, signal, sys
from pathlib import Path
from adapters.files import read_lora_dir, write_lora_dir
from adapters.record import InitRecord

target, real_replace = Path(sys.argv[1]), os.replace
def replace(src, dst):
    if Path(dst) == target:  # the moment a new version would take the name: kill -9
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
os.replace = replace
files = read_lora_dir(target)
write_lora_dir(target, state=files.state, settings=files.settings, base_model_id="tiny",
               record=InitRecord(extra={"version": 2}),
               overwrite=True)
"""


def test_a_save_killed_at_the_rename_leaves_the_adapter_and_the_next_save_cleans_up(adapter, tmp_path):
    target = save(adapter, tmp_path / "acme", version=1)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_SAVE, str(target)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_lora_dir(target).record.extra["version"] == 1  # the name still resolves, to the complete old version
    assert leftovers(tmp_path)  # what the kill left: the staging folder or link, named with the dead PID
    save(adapter, target, version=3)
    assert read_lora_dir(target).record.extra["version"] == 3 and leftovers(tmp_path) == []


def test_a_legacy_folder_loads_and_is_overwritten_into_versions(adapter, tmp_path):
    store = AdapterStore(tmp_path)
    version = store.save(adapter, "acme").resolve()
    legacy = store.path("acme")
    legacy.unlink()
    os.replace(version, legacy)  # NAME as a real folder, as stores held it before versions were links
    record = json.loads((legacy / "shoplora.json").read_text())
    del record["weights_sha256"]  # and no checksums yet
    (legacy / "shoplora.json").write_text(json.dumps(record))
    assert store.load("acme", adapter.base).record.kind == "adapter"
    store.save(adapter, "acme", overwrite=True)
    assert legacy.is_symlink() and store.read("acme").record.weights_sha256
    [previous] = store.previous_versions("acme")
    assert previous.name.startswith(".acme.previous-") and not read_lora_dir(previous).record.weights_sha256
    store.delete("acme")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("why", ["windows", "no links on this filesystem"])
def test_without_links_an_overwrite_falls_back_to_two_renames(adapter, tmp_path, monkeypatch, why):
    if why == "windows":
        monkeypatch.setattr(adapter_files, "LINKS", False)
    else:
        monkeypatch.setattr(os, "symlink", lambda *args, **kwargs: (_ for _ in ()).throw(PermissionError(1, "FAT")))
    store = AdapterStore(tmp_path)
    store.save(adapter, "acme")
    store.save(adapter, "acme", overwrite=True)
    assert not store.path("acme").is_symlink() and len(store.previous_versions("acme")) == 1
    assert "error" not in store.list()[0]
    store.delete("acme")
    assert list(tmp_path.iterdir()) == []


def test_versions_are_kept_apart_from_a_name_that_starts_alike(adapter, tmp_path):
    store = AdapterStore(tmp_path)
    for name in ["acme", "acme.v-2", "acme.v-2"]:
        store.save(adapter, name, overwrite=True)
    assert store.previous_versions("acme") == [] and len(store.previous_versions("acme.v-2")) == 1
    store.delete("acme")
    assert store.names() == ["acme.v-2"] and "error" not in store.list()[0]


def test_an_interrupted_delete_leaves_nothing_under_the_name_and_the_next_save_finishes_it(
    adapter, tmp_path, monkeypatch
):
    store = AdapterStore(tmp_path)
    for _ in range(3):
        store.save(adapter, "acme", overwrite=True)
    with monkeypatch.context() as patch:
        patch.setattr(adapter_files, "remove_entry", lambda path: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            store.delete("acme")
    assert store.names() == []
    with pytest.raises(AdapterFileError, match="no adapter called 'acme'"):
        store.read("acme")
    store.save(adapter, "acme")
    assert store.previous_versions("acme") == []  # the deleted adapter's versions are not the new one's
    assert sorted(p.name for p in tmp_path.iterdir())[1:] == ["acme"]  # its own version folder, and the name


# ------------------------------------------------------------------------------------- checksums and NaN checks
def test_weights_changed_since_they_were_saved_are_refused_and_listed_as_broken(adapter, tmp_path):
    store = AdapterStore(tmp_path)
    path = store.save(adapter, "acme")
    weights = path / "adapter_model.safetensors"
    with open(weights, "r+b") as data:  # 4 KB of junk in the middle: safetensors still parses the file
        data.seek(weights.stat().st_size // 2)
        data.write(random.Random(0).randbytes(4096))
    with pytest.raises(AdapterFileError, match="changed since it was saved.*restore a previous version"):
        store.load("acme", adapter.base)
    [row] = store.list()
    assert "changed since it was saved" in row["error"]


def test_a_scenario_weights_file_is_checked_too(adapter, tmp_path):
    scenarios = {"acme": Scenario(TASK.spec, weights="."), "other": Scenario(TASK.spec, weights="scenarios/other")}
    target = write_lora_dir(
        tmp_path / "acme",
        state=adapter.state(),
        settings=adapter.settings,
        base_model_id="tiny",
        record=AdapterRecord(spec=TASK.spec, scenarios=scenarios),
        scenario_states={"other": adapter.state()},
    )
    assert set(read_lora_dir(target).record.weights_sha256) == {
        "adapter_model.safetensors",
        "scenarios/other/adapter_model.safetensors",
    }
    (target / "scenarios/other/adapter_model.safetensors").unlink()
    with pytest.raises(AdapterFileError, match="scenarios/other/adapter_model.safetensors cannot be read"):
        read_lora_dir(target)


def broken_after_the_lora_is_added(adapter, root: Path, where: str) -> AdapterStore:
    """A stored adapter whose files pass every check at read but whose tensors do not fit the LoRA they are loaded
    into, so loading fails after it was added to the base: adapter_config.json edited to another rank (`config`), or
    a scenario's weights of another rank than the main ones (`scenario`)."""
    store = AdapterStore(root)
    if where == "config":
        path = store.save(adapter, "acme")
        config = json.loads((path / "adapter_config.json").read_text())
        (path / "adapter_config.json").write_text(json.dumps({**config, "r": 8}))
        return store
    other = Adapter(adapter.base, TASK.spec, None, LoraSettings(r=8), AdapterRecord(spec=TASK.spec))
    wider = other.state()
    other.unload()
    scenarios = {
        TASK.spec.name: Scenario(TASK.spec, weights="."),
        "other": Scenario(TASK.spec, weights="scenarios/other"),
    }
    write_lora_dir(
        store.path("acme"),
        state=adapter.state(),
        settings=adapter.settings,
        base_model_id=adapter.base.model_id,
        base_fingerprint=adapter.base.fingerprint,
        record=AdapterRecord(spec=TASK.spec, scenarios=scenarios),
        scenario_states={"other": wider},
    )
    return store


@pytest.mark.parametrize("where", ["config", "scenario"])
def test_a_failed_load_leaves_no_lora_on_the_base(adapter, tmp_path, where):
    # A server asked again and again for such an adapter kept one more LoRA per request on the shared base (RSS
    # 1.67 -> 2.35 GB over 60 requests).
    store = broken_after_the_lora_is_added(adapter, tmp_path, where)
    before = list(adapter.base.peft.peft_config)
    for _ in range(3):
        with pytest.raises(ShopLoRAError, match="has shape"):
            store.load("acme", adapter.base)
        assert list(adapter.base.peft.peft_config) == before


def test_nan_weights_are_refused_at_save_and_at_load(adapter, tmp_path):
    from safetensors.torch import save_file

    state = adapter.state()
    broken = {**state, next(iter(state)): torch.full_like(next(iter(state.values())), float("nan"))}
    with pytest.raises(AdapterFileError, match="holds NaN or inf values, so training diverged"):
        write_lora_dir(
            tmp_path / "nan", state=broken, settings=adapter.settings, base_model_id="tiny", record=InitRecord()
        )
    assert list(tmp_path.iterdir()) == []
    # An adapter saved before checksums were recorded still loads, and NaN in its weights is caught at load.
    target = save(adapter, tmp_path / "legacy", version=1)
    record = json.loads((target / "shoplora.json").read_text())
    del record["weights_sha256"]
    (target / "shoplora.json").write_text(json.dumps(record))
    assert read_lora_dir(target).record.extra["version"] == 1
    save_file(broken, target / "adapter_model.safetensors")
    with pytest.raises(AdapterFileError, match="holds NaN or inf values.*restore a previous version"):
        read_lora_dir(target)


# ------------------------------------------------------------------------------------------ staging leftovers
def test_staging_folders_of_dead_processes_are_removed_by_the_next_save(adapter, tmp_path):
    target = tmp_path / "acme"
    dead = dead_staging(target)
    running = tmp_path / f"{staging_prefix(target)}abc"  # a concurrent save of this process: kept
    fresh, old = tmp_path / ".acme.saving-fresh1", tmp_path / ".acme.saving-old1"  # named before PIDs were
    other = tmp_path / ".acme-two.saving-x"  # another adapter's
    for folder in [dead, running, fresh, old, other]:
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"half")
    os.utime(old, (time.time() - STALE_AFTER - 60,) * 2)
    save(adapter, target, version=1)
    assert leftovers(tmp_path) == sorted(p.name for p in [running, fresh, other])


def test_a_checkpoint_save_removes_the_staging_folder_of_a_killed_run(tmp_path):
    dead = dead_staging(tmp_path / checkpoint.NAME)
    dead.mkdir()
    state = checkpoint.Checkpoint(
        {"a": torch.zeros(2)}, {"state": {}, "param_groups": []}, [{"python": random.getstate()}], {"step": 1}
    )
    checkpoint.save(tmp_path, state)
    assert not dead.exists() and checkpoint.load(checkpoint.find(tmp_path)).state["step"] == 1
