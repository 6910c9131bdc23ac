"""Train a model: ``python src/train.py [experiment=...] [overrides]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

# light imports only: a sweeper process that launches jobs elsewhere (hydra/launcher=parallel)
# never imports Lightning; train() and main() import what they use
from src.utils.ddp import multirun_job_as_single_run  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.logging_utils import RankedLogger  # noqa: E402
from src.utils.run_status import task_wrapper  # noqa: E402

log = RankedLogger(__name__)


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the model, then test the best checkpoint. Returns (metrics, objects)."""
    import lightning as L

    from src.callbacks.optimized_metric import OptimizedMetricCheck
    from src.utils.batchnorm import fit_batches_to_batchnorm
    from src.utils.checkpoints import (
        check_checkpoint_file,
        check_checkpoint_fits,
        check_training_left,
        tested_checkpoint,
    )
    from src.utils.cpu import use_cpu_wisely
    from src.utils.instantiators import instantiate_run
    from src.utils.logging_utils import log_hyperparameters
    from src.utils.run_checks import check_run_settings
    from src.utils.run_dir import quiet_own_checkpoint_dir
    from src.utils.run_metadata import write_run_metadata, write_splits

    use_cpu_wisely(cfg)
    check_run_settings(cfg)  # epochs, learning rate, GPU: one message, not a late traceback
    if cfg.get("ckpt_path") == "last":  # the newest last.ckpt this run can resume
        from omegaconf import open_dict

        from src.utils.resume import resolve_last

        with open_dict(cfg):
            cfg.ckpt_path = resolve_last(cfg)
    if cfg.get("ckpt_path"):
        check_checkpoint_file(cfg.ckpt_path)
        quiet_own_checkpoint_dir(Path(cfg.paths.output_dir), cfg.ckpt_path)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    # a misspelt optimized_metric fails after the first validated epoch, not after the run
    metric = cfg.get("optimized_metric")
    objects = instantiate_run(cfg, [OptimizedMetricCheck(metric)] if metric else [])
    model, datamodule, trainer = objects["model"], objects["datamodule"], objects["trainer"]
    fit_batches_to_batchnorm(model, datamodule)
    write_run_metadata(cfg.paths.output_dir, cfg.paths.root_dir, trainer)
    write_splits(cfg.paths.output_dir, datamodule)  # <run>/splits.json: the samples of each split
    if cfg.get("ckpt_path"):
        checkpoint = check_checkpoint_fits(cfg.ckpt_path, model)  # read once for both checks
        if checkpoint is not None and cfg.get("train"):  # a resume with nothing left says so
            check_training_left(cfg.ckpt_path, checkpoint, cfg.trainer)
    if objects["logger"]:
        log.info("Logging hyperparameters!")
        log_hyperparameters(objects)

    if cfg.get("train"):
        log.info("Starting training!")
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    train_metrics = dict(trainer.callback_metrics)

    if cfg.get("test"):
        log.info("Starting testing!")
        checkpoints = trainer.checkpoint_callback
        ckpt_path = tested_checkpoint(  # the best epoch, or the weight average (callbacks=swa)
            checkpoints.dirpath if checkpoints else None,
            checkpoints.best_model_path if checkpoints else "",
        )
        if not cfg.get("train") and cfg.get("ckpt_path"):  # train=false: the one given
            ckpt_path = cfg.ckpt_path
        if not ckpt_path:
            log.warning("No best checkpoint found: testing the current weights.")
            ckpt_path = None
        trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
        log.info(f"Best ckpt path: {ckpt_path}")
    test_metrics = dict(trainer.callback_metrics)

    return {**train_metrics, **test_metrics}, objects


@entry_point("train.yaml")  # config checks, extras, one message for a user error: utils/entry_point
def main(cfg: DictConfig) -> float | list[float] | None:
    from src.callbacks.optimized_metric import fit_free
    from src.utils.errors import MetricNotLoggedError
    from src.utils.loggers import report_optimized_metric
    from src.utils.logging_utils import count_parameters
    from src.utils.run_status import mark_failed
    from src.utils.run_summary import get_metric_value, print_summary

    with multirun_job_as_single_run(__file__):  # DDP's extra ranks re-run this job alone
        metric_dict, objects = train(cfg)
    # the parameter counts can be objectives too: optimized_metric=[val/acc_best, model/params/total]
    objectives = {**metric_dict, **count_parameters(objects["model"])}
    metric = cfg.get("optimized_metric")
    if not cfg.get("train") and not fit_free(metric):
        # train=false only tests: no validation ran, so the default val/..._best has no
        # value (it failed a run that had tested its checkpoint); test/ metrics still count
        log.info(
            f"train=false: no validation ran, so optimized_metric={metric} has no value "
            "(to sweep over tested checkpoints: optimized_metric=test/acc)"
        )
        metric = None
    try:
        value = get_metric_value(objectives, metric)
    except MetricNotLoggedError as error:  # the run trained, but it failed its sweep
        mark_failed(cfg.paths.output_dir, error)
        raise
    report_optimized_metric(objects["trainer"], objectives, metric)
    print_summary(metric_dict, cfg.paths.output_dir)
    return value


if __name__ == "__main__":
    main()
