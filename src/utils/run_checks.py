"""Checks of a few run settings that otherwise fail late, as a traceback (issue 15.6).

Made in ``train()`` before anything is instantiated: a wrong number of epochs,
a learning rate that is not positive, a GPU trainer on a machine without one.
General typed validation of every config group is not here (see the typed-config
checks); these are the cases whose own errors are misleading.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from src.utils.errors import UserInputError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_epochs(trainer: DictConfig) -> None:
    for key in ("max_epochs", "min_epochs"):
        value = trainer.get(key)
        if value is not None and (not _is_int(value) or value < -1):
            raise UserInputError(
                f"trainer.{key}={value!r} is not a number of epochs: give a whole number "
                f"(trainer.{key}=10; -1 for no limit)."
            )


def check_learning_rate(model: DictConfig | None) -> None:
    optimizer = (model or {}).get("optimizer") if model is not None else None
    if not isinstance(optimizer, DictConfig) or "lr" not in optimizer:
        return
    lr = optimizer.lr
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr >= 0:
        raise UserInputError(
            f"model.optimizer.lr={lr!r} must be a number >= 0 (for example "
            "model.optimizer.lr=0.001; make lr-find suggests one)."
        )


def check_accelerator(trainer: DictConfig) -> None:
    accelerator = str(trainer.get("accelerator", "")).lower()
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise UserInputError(
            f"trainer.accelerator={accelerator} but this machine has no usable CUDA GPU "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). Use trainer=cpu, "
            "or trainer=mps on Apple silicon."
        )


def check_run_settings(cfg: DictConfig) -> None:
    """Stop with one message on the settings above (see the module docstring)."""
    if cfg.get("trainer") is not None:
        check_epochs(cfg.trainer)
        check_accelerator(cfg.trainer)
    check_learning_rate(cfg.get("model"))
