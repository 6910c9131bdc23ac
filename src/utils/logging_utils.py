"""Console logging that speaks once per job, and hyperparameters sent to every logger."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf


def current_rank() -> int:
    """This process's global rank (0 outside distributed runs), as Lightning knows it;
    Lightning is imported here, not at import time, to keep this module light."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0)


def route_lightning_logs() -> None:
    """Lightning's messages through the root logger's handlers alone (under Hydra: the
    console and the run's log file).

    On import, the ``lightning``, ``lightning.pytorch`` and ``lightning.fabric``
    packages may give their loggers a stderr handler of their own, and keep them from
    propagating only when the root logger had no handler yet: so whether a Lightning
    message prints once or twice, and whether it reaches the run's log file, would
    depend on what imported Lightning first. Without root handlers (outside Hydra)
    Lightning keeps its own.
    """
    if not logging.getLogger().handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        package_logger = logging.getLogger(name)
        for handler in list(package_logger.handlers):
            package_logger.removeHandler(handler)
        package_logger.propagate = True


class RankedLogger(logging.LoggerAdapter):
    """A logger whose messages come from rank 0 only (unless ``rank_zero_only=False``)."""

    def __init__(self, name: str = __name__, rank_zero_only: bool = True) -> None:
        super().__init__(logging.getLogger(name), extra={})
        self.rank_zero_only = rank_zero_only

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        rank = current_rank()
        if self.rank_zero_only and rank != 0:
            return
        msg, kwargs = self.process(f"[rank: {rank}] {msg}" if rank else msg, kwargs)
        self.logger.log(level, msg, *args, **kwargs)


log = RankedLogger(__name__)


def count_parameters(module: Any) -> dict[str, int]:
    params = list(module.parameters())
    return {
        "model/params/total": sum(p.numel() for p in params),
        "model/params/trainable": sum(p.numel() for p in params if p.requires_grad),
        "model/params/non_trainable": sum(p.numel() for p in params if not p.requires_grad),
    }


def log_hyperparameters(object_dict: Mapping[str, Any]) -> None:
    """Send the composed config, parameter counts and tags to every logger of the trainer
    (from rank 0)."""
    if current_rank() != 0:
        return
    cfg = object_dict["cfg"]
    trainer = object_dict["trainer"]
    if not trainer.loggers:
        log.warning("No logger configured: hyperparameters are not logged.")
        return
    keys = (
        "model",
        "data",
        "trainer",
        "callbacks",
        "extras",
        "task_name",
        "tags",
        "ckpt_path",
        "seed",
    )
    hparams: dict[str, Any] = {}
    for key in keys:
        value = cfg.get(key)
        hparams[key] = (
            OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        )
    hparams.update(count_parameters(object_dict["model"]))
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)
