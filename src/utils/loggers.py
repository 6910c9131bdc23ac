"""Logger factories where a logger needs a decision made at start-up."""

from __future__ import annotations

import logging
import os
from typing import Any


def wandb_logger(
    offline: bool | None = None,
    name: str | None = None,
    group: str | None = None,
    task_name: str = "train",
    **kwargs: Any,
) -> Any:
    """A ``WandbLogger`` that runs offline unless the user has configured W&B.

    ``offline=None`` decides: online when ``WANDB_API_KEY`` is set (for example
    in the project's git-ignored ``.env``, which rootutils loads) or
    ``WANDB_MODE`` asks for it; offline otherwise, so a run never stalls on a
    login prompt or an unreachable server. wandb is imported only here.
    ``name=None``: the task, job number and overrides; ``group=None``: the multirun.
    """
    from lightning.pytorch.loggers import WandbLogger

    if offline is None:
        mode = os.environ.get("WANDB_MODE", "")
        offline = mode in ("offline", "disabled") or (
            not os.environ.get("WANDB_API_KEY") and mode != "online"
        )
    # named like the MLflow run; the jobs of one multirun share a group (its sweep's name)
    name = name or default_run_name(task_name)
    group = group or job_identity()["multirun"] or ""
    logger = WandbLogger(offline=offline, name=name, group=group, **kwargs)
    # Lightning passes wandb.init anonymous=None unasked, and wandb warns at any value that
    # the setting "has no effect and will be removed": a line no user can act on
    if logger._wandb_init.get("anonymous") is None:
        logger._wandb_init.pop("anonymous", None)
    return logger


# overrides that say where a run writes or what it prints, not what it trains: not in names
NOT_IN_NAME = ("paths.", "hydra.", "extras.", "logger", "tags=")


def job_identity() -> dict[str, Any]:
    """Who this run is, from Hydra's runtime config: its job number (multirun only),
    overrides, and the multirun it belongs to (its sweep directory's name)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {"num": None, "overrides": "", "swept": [], "multirun": None}
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = [o for o in hydra_cfg.overrides.task if not o.lstrip("+~").startswith(NOT_IN_NAME)]
    shared = shared_override_keys(hydra_cfg.sweep.dir) if multirun else set()
    return {
        "num": hydra_cfg.job.get("num") if multirun else None,
        "overrides": " ".join(overrides),
        # what tells this job from its siblings: its overrides but those every job has
        "swept": [o for o in overrides if override_key(o) not in shared],
        "multirun": os.path.basename(os.path.normpath(hydra_cfg.sweep.dir)) if multirun else None,
    }


def override_key(override: str) -> str:
    """``++trainer.max_epochs=1`` -> ``trainer.max_epochs``."""
    return override.lstrip("+~").split("=", 1)[0]


def shared_override_keys(sweep_dir: str) -> set[str]:
    """The keys every job of a multirun sets alike: its command line's overrides that are
    no sweep (``trainer.max_epochs=1``, not ``lr=0.1,0.2``), read from the ``multirun.yaml``
    Hydra's basic sweeper writes; none known (an empty set) without it (Optuna's sweeper).
    Keys, not strings: a job's overrides are re-printed (``false`` comes back ``False``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    path = os.path.join(sweep_dir, "multirun.yaml")
    if not os.path.isfile(path):
        return set()
    given = list(OmegaConf.load(path).hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(given)
    return {
        override_key(o) for o, p in zip(given, parsed, strict=True) if not p.is_sweep_override()
    }


def default_run_name(task_name: str) -> str:
    """``<task>`` or ``<task>#<job>``, then the job's overrides (those about what it trains;
    in a multirun those that differ between its jobs): ``train#3 model=cnn seed=2``."""
    job = job_identity()
    name = task_name if job["num"] is None else f"{task_name}#{job['num']}"
    return " ".join([name, *job["swept"]])


def mlflow_logger(
    run_name: str | None = None,
    tags: Any = None,
    task_name: str = "train",
    **kwargs: Any,
) -> Any:
    """An ``MLFlowLogger`` whose run is named after the task, job number and overrides
    (``run_name=None``), with the config's ``tags`` as real MLflow tags (each tag a key with
    value "true"), and, in a multirun, a ``multirun`` tag naming the sweep so its jobs can
    be grouped and compared (``tags.multirun = '...'`` in the runs table's search).

    MLflow's own random names come from a generator seeded by ``seed_everything``, so
    every run of a seed got the same one. mlflow is imported only here."""
    from lightning.pytorch.loggers import MLFlowLogger

    source = logging.getLogger("lightning.pytorch.loggers.mlflow")
    if not any(isinstance(f, NewExperimentIsNoWarning) for f in source.filters):
        source.addFilter(NewExperimentIsNoWarning())
    name = run_name or default_run_name(task_name)
    return MLFlowLogger(run_name=name, tags=run_tags(tags, task_name), **kwargs)


class NewExperimentIsNoWarning(logging.Filter):
    """Lightning warns "Experiment with name train not found. Creating it." on the first
    run of every task (a new database, a new task): nothing is wrong, so it is an INFO
    line saying what happens."""

    PREFIX, SUFFIX = "Experiment with name ", " not found. Creating it."

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if record.levelno == logging.WARNING and message.startswith(self.PREFIX):
            if message.endswith(self.SUFFIX):
                experiment = message[len(self.PREFIX) : -len(self.SUFFIX)]
                record.msg, record.args = f"Creating the MLflow experiment {experiment!r}", ()
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def run_tags(tags: Any, task_name: str) -> dict[str, str]:
    """The config's ``tags`` (a list: each tag -> "true"; a mapping: as given) plus the
    task, and in a multirun the sweep's name and the job number."""
    job = job_identity()
    found: dict[str, str] = {"task": task_name}
    if hasattr(tags, "items"):
        found.update({str(k): str(v) for k, v in tags.items()})
    elif tags:
        found.update({str(tag): "true" for tag in tags})
    if job["multirun"]:
        found.update(multirun=job["multirun"], job=str(job["num"]))
    if job["overrides"]:
        found["overrides"] = job["overrides"]
    return found


def report_optimized_metric(trainer: Any, objectives: dict[str, Any], names: Any) -> None:
    """Give TensorBoard's HPARAMS tab the run's real ``optimized_metric`` (one column per
    metric when it lists several) instead of Lightning's ``hp_metric = -1`` placeholder
    (``default_hp_metric: false`` in configs/logger/tensorboard.yaml)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from src.utils.tensorboard_hparams import write_hparams

    names = [names] if isinstance(names, str) else list(names or [])
    metrics = {n: float(objectives[n]) for n in names if n in objectives}
    for logger in trainer.loggers if metrics else []:
        if isinstance(logger, TensorBoardLogger):
            # the job's own overrides lead the HPARAMS table (it shows 5 columns at first)
            write_hparams(logger, metrics, job_identity()["swept"], step=trainer.global_step)
