"""Evaluate a checkpoint on the test set.

``python src/eval.py ckpt_path=<file.ckpt> [data/model overrides]`` evaluates
that checkpoint with the configured data and model.
``python src/eval.py run_dir=<a training run>`` rebuilds data and model from
the run's saved config and evaluates its best checkpoint: no need to repeat
the training overrides.
"""

from __future__ import annotations

import warnings
from typing import Any

import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.checkpoints import check_checkpoint_file, check_checkpoint_fits  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.instantiators import instantiate_run  # noqa: E402
from src.utils.logging_utils import RankedLogger, log_hyperparameters  # noqa: E402
from src.utils.run_metadata import write_run_metadata  # noqa: E402
from src.utils.run_status import task_wrapper  # noqa: E402
from src.utils.run_summary import print_summary  # noqa: E402
from src.utils.training_run import TrainingRun  # noqa: E402

log = RankedLogger(__name__)


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test the checkpoint ``cfg.ckpt_path``. Returns (metrics, objects)."""
    run = TrainingRun.of(cfg, "evaluate")
    run.adopt(cfg)  # the run's data and model (with run_dir=), and its checkpoint
    source = f"of run {run.run_dir}" if run.run_dir else "configured here (ckpt_path= alone)"
    log.info(f"Evaluating {cfg.ckpt_path} with the data and model {source}")
    check_checkpoint_file(cfg.ckpt_path)
    objects = instantiate_run(cfg)
    check_checkpoint_fits(cfg.ckpt_path, objects["model"], run.run_dir)
    write_run_metadata(cfg.paths.output_dir, cfg.paths.root_dir, objects["trainer"])
    if objects["logger"]:
        log_hyperparameters(objects)
    log.info("Starting testing!")
    with warnings.catch_warnings():  # testing restores the weights: the training callbacks
        # (checkpointing, early stopping) that Lightning asks for have nothing to do here
        warnings.filterwarnings("ignore", message=r".*callbacks used to create the checkpoint")
        objects["trainer"].test(
            model=objects["model"], datamodule=objects["datamodule"], ckpt_path=cfg.ckpt_path
        )
    return dict(objects["trainer"].callback_metrics), objects


@entry_point("eval.yaml")
def main(cfg: DictConfig) -> None:
    metric_dict, _ = evaluate(cfg)
    print_summary(metric_dict, cfg.paths.output_dir)


if __name__ == "__main__":
    main()
