"""``ckpt_path=last``: the newest ``last.ckpt`` of the same task and experiment.

Every run gets a new directory, so Lightning's own ``ckpt_path="last"`` (the
last checkpoint of *this* run's checkpoint directory) finds nothing and trains
from scratch without a word. Here ``last`` means the newest
``<log_dir>/<task_name>/**/checkpoints/last.ckpt`` whose run used the same
``experiment`` choice as this one; without one the run stops with a message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


def current_experiment() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("experiment")


def run_experiment(run_dir: Path) -> str | None:
    """The ``experiment`` choice a run was started with (its ``.hydra`` files)."""
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    try:
        if hydra_file.is_file():
            saved = yaml.safe_load(hydra_file.read_text()) or {}
            return (
                ((saved.get("hydra") or {}).get("runtime") or {})
                .get("choices", {})
                .get("experiment")
            )
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)


def resolve_last(cfg: Any) -> str:
    """The path ``ckpt_path=last`` stands for (see the module docstring), said in the log."""
    task_dir = Path(cfg.paths.log_dir) / str(cfg.task_name)
    experiment = current_experiment()
    own = Path(cfg.paths.output_dir).resolve()
    candidates = [
        last
        for last in (task_dir.rglob("checkpoints/last.ckpt") if task_dir.is_dir() else [])
        if last.parent.parent.resolve() != own and run_experiment(last.parent.parent) == experiment
    ]
    which = f"task '{cfg.task_name}', experiment={experiment or 'none'}"
    if not candidates:
        raise UserInputError(
            f"ckpt_path=last: no run of {which} under {task_dir} has a checkpoints/last.ckpt, "
            "so there is nothing to resume. Give the checkpoint itself "
            "(ckpt_path=<run>/checkpoints/last.ckpt), or drop ckpt_path to train from scratch."
        )
    newest = max(candidates, key=lambda path: path.stat().st_mtime)
    log.info(f"ckpt_path=last: resuming {newest} (the newest last.ckpt of {which})")
    return str(newest)
