"""Batches that a net with BatchNorm can train on."""

from __future__ import annotations

from typing import Any

from torch import nn

from src.utils.errors import UserInputError


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def fit_batches_to_batchnorm(model: nn.Module, datamodule: Any) -> None:
    """BatchNorm cannot train on a batch of one sample: refuse such a batch size,
    and drop an incomplete last training batch so that no batch of one can occur."""
    if not has_batchnorm(model):
        return
    batch_size = getattr(datamodule, "batch_size", None)
    if batch_size is not None and batch_size < 2:
        raise UserInputError(
            f"data.batch_size={batch_size} cannot train a net with BatchNorm (it needs at "
            "least 2 samples per batch). Use data.batch_size=2 or more."
        )
    if hasattr(datamodule, "drop_last"):
        datamodule.drop_last = True
