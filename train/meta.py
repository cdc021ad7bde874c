"""Meta-training recipe: a LoRA init learned by Reptile or first-order MAML, or the multi-task SFT baseline.

    accelerate launch -m train.meta configs/embedded.yaml [key=value ...]
    python -m train.meta configs/tiny.yaml base_model=DIR outer_steps=2        # one process, no accelerate launch

Each outer step draws a meta-batch of tasks (train/episodes.py); each process adapts a copy of the init to its own
tasks with the same inner loop adaptation uses (adapters/training.py), never synchronising inside it. The
per-task meta-gradients (Reptile: init - adapted; FOMAML: the query-loss gradient at the adapted weights) are
averaged over all processes, and one outer optimizer step moves the init. `multitask` trains the LoRA directly on
the same episodes' support sets with the same number of examples per step: the baseline a meta init must beat.
Under an FSDP accelerate config the frozen base is sharded over the processes (train/sharding.py); the LoRA tensors,
and so the arithmetic, stay as under DDP.
The result is a PEFT adapter folder `output_dir/init` with `shoplora.json`; `output_dir/checkpoint` resumes a run.
This module is the entry point; the recipe is train/meta_trainer.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from prompts.errors import exit_code

from .config import MetaConfig, describe_fields, load_config
from .meta_trainer import MetaTrainer

__all__ = ["MetaTrainer", "main", "run"]


def run(config: MetaConfig) -> Path | None:
    """Meta-train as `config` says; returns the init's folder, or None when `stop_after` stopped the run early."""
    trainer = MetaTrainer(config)
    try:
        trainer.setup()
        return trainer.train()
    finally:
        trainer.cleanup()


def main(argv: list[str] | None = None) -> int:
    """`python -m train.meta CONFIG.yaml [key=value ...]`; also `shoplora meta-train`. Errors are one line, exit 2."""
    parser = argparse.ArgumentParser(
        prog="train.meta",
        description=__doc__,
        epilog="config fields:\n" + describe_fields(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="YAML config (configs/*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config fields to override")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return exit_code(lambda: run(load_config(args.config, args.overrides)))


if __name__ == "__main__":
    sys.exit(main())
