"""Run-level helpers: optional extras, the task wrapper, the metric for sweepers."""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from src.utils import rich_utils
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)

# warnings that say nothing actionable about a template run
KNOWN_NOISE = (
    r".*does not have many workers.*",  # our loaders need no workers
    r".*Consider setting `persistent_workers=True`.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


def extras(cfg: DictConfig) -> None:
    """Optional utilities before the task starts: quiet known noise, tags, config tree."""
    if not cfg.get("extras"):
        return
    if cfg.extras.get("ignore_warnings"):
        log.info("Silencing known-noise warnings! <cfg.extras.ignore_warnings=True>")
        for pattern in KNOWN_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
    if cfg.extras.get("enforce_tags"):
        rich_utils.enforce_tags(cfg, save_to_file=True)
    if cfg.extras.get("print_config"):
        rich_utils.print_config_tree(cfg, resolve=True, save_to_file=True)


STATUS_FILE = "run_status.json"


@rank_zero_only
def write_status(output_dir: str, status: dict[str, Any]) -> None:
    path = Path(output_dir) / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(status, indent=2) + "\n")


def task_wrapper(task: Callable[[DictConfig], tuple[dict, dict]]) -> Callable:
    """Record how the task ended in ``<run>/run_status.json`` ("finished" with the
    final metrics, "failed" with the error, "interrupted"), log the output
    directory, and close W&B runs if any."""

    @functools.wraps(task)
    def wrap(cfg: DictConfig) -> tuple[dict, dict]:
        status: dict[str, Any] = {"status": "interrupted"}
        try:
            metric_dict, object_dict = task(cfg)
            metrics = {k: float(v) for k, v in sorted(metric_dict.items())}
            status = {"status": "finished", "metrics": metrics}
            return metric_dict, object_dict
        except Exception as error:
            status = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
            raise
        finally:
            write_status(cfg.paths.output_dir, status)
            log.info(f"Output dir: {cfg.paths.output_dir}")
            wandb = sys.modules.get("wandb")
            if wandb is not None and wandb.run is not None:
                wandb.finish()

    return wrap


@rank_zero_only
def print_summary(metric_dict: dict[str, Any], output_dir: str) -> None:
    """A run's closing lines: its test metrics and where everything was written."""
    tests = {k: float(v) for k, v in sorted(metric_dict.items()) if k.startswith("test/")}
    if tests:
        print("Test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in tests.items()))
    print(f"Run directory: {output_dir}")


def get_metric_value(
    metric_dict: dict[str, Any], metric_name: str | Sequence[str] | None
) -> float | list[float] | None:
    """The value of ``optimized_metric`` for the sweeper; a list of values when it names
    several metrics (a multi-objective search, one ``hydra.sweeper.direction`` each)."""
    if not metric_name:
        log.info("Metric name is None! Skipping metric value retrieval...")
        return None
    names = [metric_name] if isinstance(metric_name, str) else list(metric_name)
    missing = [name for name in names if name not in metric_dict]
    if missing:
        raise UserInputError(
            f"optimized_metric={metric_name} names {missing}, which the run did not log. "
            f"Logged metrics: {sorted(metric_dict)}. Set optimized_metric to one of them "
            "(or a list of them)."
        )
    values = [float(metric_dict[name]) for name in names]
    shown = ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))
    log.info(f"Retrieved metric value! <{shown}>")
    return values[0] if isinstance(metric_name, str) else values
