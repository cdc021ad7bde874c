"""Every shipped config parses, and starts with the command that runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONFIGS = sorted((Path(__file__).parent.parent / "configs").rglob("*.yaml"))


def test_configs_ship():
    assert CONFIGS, "configs/ holds no YAML"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_parses_and_starts_with_its_launch_line(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith(("# accelerate launch", "# shoplora")), f"{path.name} must begin with its launch command"
    assert isinstance(yaml.safe_load(path.read_text()), dict)


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name == "accelerate"], ids=lambda p: p.name)
def test_accelerate_configs_load_in_accelerate(path):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(path)
    assert config.num_processes >= 1


def test_accelerate_configs_ship_for_one_process_ddp_and_fsdp():
    names = {p.stem for p in CONFIGS if p.parent.name == "accelerate"}
    assert {"single", "ddp", "fsdp", "cpu-2proc"} <= names
