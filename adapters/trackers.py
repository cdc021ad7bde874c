"""Experiment trackers for meta-training, the benchmark and adapt: `report_to` names one as accelerate does.

`report_to: tensorboard | wandb | mlflow | none` (default none: the JSON records and plots are always written).
Meta-training hands the name to `Accelerator(log_with=...)`; adapt and the benchmark, which run without an
Accelerator, open accelerate's tracker of that name directly (`open_tracker`), so every run logs the same way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from prompts import ShopLoRAError

from .record import AdapterRecord

REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}  # tracker -> its pip package


class TrackerError(ShopLoRAError):
    """A `report_to` that is unknown, or whose package is not installed."""


def check_report_to(value: str | None, what: str = "report_to") -> str | None:
    """accelerate's `log_with` for `value` (None for none); an unknown tracker or a missing package is an error
    naming the fix."""
    if value is None or value == "none":
        return None
    if value not in REPORT_TO:
        raise TrackerError(
            f"{what} {value!r} is not a tracker ShopLoRA reports to; use one of {' | '.join(REPORT_TO[1:])} | none"
        )
    package = PACKAGES[value]
    if importlib.util.find_spec(package) is None:
        raise TrackerError(
            f"{what}={value} needs the {package} package, which is not installed: pip install "
            f"{package} (or {what} none)"
        )
    return value


def scalars(config: dict) -> dict:
    """The config values trackers accept (TensorBoard's hparams take scalars only)."""
    return {k: v for k, v in config.items() if isinstance(v, (bool, int, float, str))}


class Tracker:
    """One run of accelerate's tracker `name`: `log({"loss": 0.3}, step=1)`, then `finish()`."""

    def __init__(self, name: str, run_name: str, logging_dir: str | Path, config: dict | None = None):
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        tracker_class = LOGGER_TYPE_TO_CLASS[name]
        if name == "mlflow":
            self.tracker = tracker_class(experiment_name=run_name, logging_dir=str(logging_dir))
        elif tracker_class.requires_logging_directory:
            self.tracker = tracker_class(run_name, str(logging_dir))
        else:
            self.tracker = tracker_class(run_name)
        if hasattr(self.tracker, "start"):  # accelerate >= 1.4 starts trackers apart from building them
            self.tracker.start()
        if config:
            self.tracker.store_init_configuration(scalars(config))

    def log(self, values: dict[str, float], step: int) -> None:
        self.tracker.log(values, step=step)

    def finish(self) -> None:
        self.tracker.finish()


def open_tracker(
    report_to: str | None, run_name: str, logging_dir: str | Path, config: dict | None = None
) -> Tracker | None:
    """The tracker `report_to` names, started (None for none). TensorBoard writes to `logging_dir/run_name`."""
    name = check_report_to(report_to)
    return Tracker(name, run_name, logging_dir, config) if name else None


def report_adaptation(
    report_to: str | None, record: AdapterRecord, run_name: str, logging_dir: str | Path = "runs"
) -> None:
    """Log an adaptation's latest fit to the tracker `report_to`: the training loss of each step, then the held-out
    metrics at the last step. Example: `report_adaptation("tensorboard", adapter.record, "acme-returns")`."""
    tracker = open_tracker(
        report_to, run_name, logging_dir, {"init": record.init, "seed": record.seed, "n_examples": record.n_examples}
    )
    if tracker is None:
        return
    fitted = record.latest_fit
    losses = fitted.train_loss if fitted else []
    try:
        for step, loss in enumerate(losses, start=1):
            tracker.log({"train/loss": loss}, step=step)
        metrics = {
            f"held_out/{k.removeprefix('held_out_')}": v
            for k, v in record.metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if metrics:
            tracker.log(metrics, step=len(losses))
    finally:
        tracker.finish()
