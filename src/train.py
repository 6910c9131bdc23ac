"""Train a model: ``python src/train.py [experiment=...] [overrides]``."""

from __future__ import annotations

from typing import Any

import hydra
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils import (  # noqa: E402  (needs the root on sys.path)
    RankedLogger,
    check_batchnorm_batches,
    check_checkpoint_fits,
    exit_on_user_error,
    extras,
    get_metric_value,
    log_hyperparameters,
    print_summary,
    task_wrapper,
)
from src.utils.ddp import multirun_job_as_single_run  # noqa: E402
from src.utils.instantiators import instantiate_run  # noqa: E402
from src.utils.logging_utils import count_parameters  # noqa: E402
from src.utils.run_metadata import write_run_metadata, write_splits  # noqa: E402

log = RankedLogger(__name__)


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the model, then test the best checkpoint. Returns (metrics, objects)."""
    import lightning as L

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    objects = instantiate_run(cfg)
    model, datamodule, trainer = objects["model"], objects["datamodule"], objects["trainer"]
    check_batchnorm_batches(model, datamodule)
    write_run_metadata(cfg.paths.output_dir, cfg.paths.root_dir, trainer)
    write_splits(cfg.paths.output_dir, datamodule)  # <run>/splits.json: the samples of each split
    if cfg.get("ckpt_path"):
        check_checkpoint_fits(cfg.ckpt_path, model)
    if objects["logger"]:
        log.info("Logging hyperparameters!")
        log_hyperparameters(objects)

    if cfg.get("train"):
        log.info("Starting training!")
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    train_metrics = dict(trainer.callback_metrics)

    if cfg.get("test"):
        log.info("Starting testing!")
        ckpt_path = (
            trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        )
        if not ckpt_path:
            log.warning("No best checkpoint found: testing the current weights.")
            ckpt_path = None
        trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
        log.info(f"Best ckpt path: {ckpt_path}")
    test_metrics = dict(trainer.callback_metrics)

    return {**train_metrics, **test_metrics}, objects


@hydra.main(version_base="1.3", config_path="../configs", config_name="train.yaml")
@exit_on_user_error
def main(cfg: DictConfig) -> float | list[float] | None:
    extras(cfg)
    with multirun_job_as_single_run(__file__):  # DDP's extra ranks re-run this job alone
        metric_dict, objects = train(cfg)
    # the parameter counts can be objectives too: optimized_metric=[val/acc_best, model/params/total]
    objectives = {**metric_dict, **count_parameters(objects["model"])}
    value = get_metric_value(objectives, cfg.get("optimized_metric"))
    print_summary(metric_dict, cfg.paths.output_dir)
    return value


if __name__ == "__main__":
    main()
