"""Evaluate a checkpoint on the test set.

``python src/eval.py ckpt_path=<file.ckpt> [data/model overrides]`` evaluates
that checkpoint with the configured data and model.
``python src/eval.py run_dir=<a training run>`` rebuilds data and model from
the run's saved config and evaluates its best checkpoint: no need to repeat
the training overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import rootutils
from omegaconf import DictConfig, open_dict

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.checkpoints import (  # noqa: E402
    best_checkpoint,
    check_checkpoint_fits,
    run_config,  # noqa: E402
)
from src.utils.errors import UserInputError, exit_on_user_error  # noqa: E402
from src.utils.extras import extras  # noqa: E402
from src.utils.instantiators import instantiate_run  # noqa: E402
from src.utils.logging_utils import RankedLogger, log_hyperparameters  # noqa: E402
from src.utils.run_metadata import write_run_metadata  # noqa: E402
from src.utils.run_status import task_wrapper  # noqa: E402
from src.utils.run_summary import print_summary  # noqa: E402

log = RankedLogger(__name__)


def adopt_run_config(cfg: DictConfig) -> None:
    """Take data and model from the training run in ``cfg.run_dir`` (and its best
    checkpoint, unless ``ckpt_path`` is given)."""
    run_dir = Path(cfg.run_dir)
    run_cfg = run_config(run_dir, trust=bool(cfg.get("trust_run_dir")))
    with open_dict(cfg):
        cfg.data = run_cfg.data
        cfg.model = run_cfg.model
        if not cfg.get("ckpt_path"):
            cfg.ckpt_path = str(best_checkpoint(run_dir))
    log.info(f"Evaluating {cfg.ckpt_path} with the data and model of {run_dir}")


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test the checkpoint ``cfg.ckpt_path``. Returns (metrics, objects)."""
    if cfg.get("run_dir"):
        adopt_run_config(cfg)
    if not cfg.get("ckpt_path"):
        raise UserInputError(
            "Give a checkpoint to evaluate: ckpt_path=<file.ckpt> or run_dir=<run>."
        )
    objects = instantiate_run(cfg)
    check_checkpoint_fits(cfg.ckpt_path, objects["model"])
    write_run_metadata(cfg.paths.output_dir, cfg.paths.root_dir, objects["trainer"])
    if objects["logger"]:
        log_hyperparameters(objects)
    log.info("Starting testing!")
    objects["trainer"].test(
        model=objects["model"], datamodule=objects["datamodule"], ckpt_path=cfg.ckpt_path
    )
    return dict(objects["trainer"].callback_metrics), objects


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval.yaml")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    extras(cfg)
    metric_dict, _ = evaluate(cfg)
    print_summary(metric_dict, cfg.paths.output_dir)


if __name__ == "__main__":
    main()
