"""How a run ended, in ``<run>/run_status.json``: written by ``task_wrapper``, read by
``src.utils.runs``.

Light on purpose (Lightning is imported only when a status is written, by then
the task has imported it): ``src/train.py`` decorates its task with this at
import time, and a sweeper process that only launches jobs should not pay for
Lightning.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.utils.logging_utils import RankedLogger, current_rank

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = RankedLogger(__name__)


STATUS_FILE = "run_status.json"


def write_status(output_dir: str, status: dict[str, Any]) -> None:
    if current_rank() != 0:
        return
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
