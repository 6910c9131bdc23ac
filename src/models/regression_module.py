"""Regression: one or more continuous targets, metrics in the data's own units."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from src.models.base_module import BaseLitModule
from src.models.components.per_target import PerTarget


class RegressionModule(BaseLitModule):
    """Predicts targets ``y`` (N x targets, original units) from a batch ``(x, y)``.

    The net works in standardised target units: the loss compares its output
    with ``(y - target_mean) / target_std``, which keeps targets of any scale
    at a learning rate's reach. ``forward`` and the metrics undo the scaling,
    so MAE and RMSE read in the data's units. ``target_mean`` and ``target_std``
    are buffers: they travel in the checkpoint's ``state_dict``.

    Logs ``{train,val,test}/loss`` (standardised units), ``/mae``, ``/rmse`` and
    ``/r2`` (means over the targets), the same per target
    (``val/<target>/r2``), and ``val/r2_best``.

    Args:
        net: maps inputs to one output per target.
        target_names: the targets' names (filled from the data when ``???``).
        target_mean, target_std: the training targets' mean and standard
            deviation, per target (filled from the data when ``???``).
        optimizer, scheduler, compile, scheduler_monitor, monitor, mode: see
            ``BaseLitModule`` (the model config sets monitor and mode).
        criterion: the loss on standardised targets (mean squared error when
            not given; ``model/criterion=huber`` or ``l1`` for others).
    """

    def __init__(
        self,
        net: nn.Module,
        target_names: Sequence[str],
        target_mean: Sequence[float],
        target_std: Sequence[float],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        criterion: nn.Module | None = None,
        compile: bool = False,
        scheduler_monitor: str = "val/loss",
        monitor: str = "val/r2",
        mode: str = "max",
    ) -> None:
        # plain lists, not Hydra's ListConfig: save_hyperparameters stores these very
        # locals, and a checkpoint must load with torch.load(weights_only=True)
        target_names = [str(name) for name in target_names]
        target_mean = [float(value) for value in target_mean]
        target_std = [float(value) for value in target_std]
        if not len(target_names) == len(target_mean) == len(target_std):
            raise ValueError(
                f"{len(target_names)} target names, but {len(target_mean)} means and "
                f"{len(target_std)} standard deviations"
            )
        self.target_names = target_names
        criterion = criterion or nn.MSELoss()
        super().__init__(
            net, optimizer, scheduler, criterion, compile, scheduler_monitor, monitor, mode
        )
        self.register_buffer("target_mean", torch.tensor(target_mean))
        self.register_buffer("target_std", torch.tensor(target_std))

    def make_metrics(self) -> MetricCollection:
        count, names = len(self.target_names), self.target_names
        return MetricCollection(
            {
                "mae": PerTarget(MeanAbsoluteError(num_outputs=count), "mae", names),
                "rmse": PerTarget(
                    MeanSquaredError(squared=False, num_outputs=count), "rmse", names
                ),
                "r2": PerTarget(R2Score(multioutput="raw_values"), "r2", names),
            }
        )

    def forward(self, x: Tensor) -> Tensor:
        """Predictions in the targets' original units."""
        return self.net(x) * self.target_std + self.target_mean

    def model_step(self, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        scaled = self.net(x)
        loss = self.criterion(scaled, (y - self.target_mean) / self.target_std)
        return loss, scaled * self.target_std + self.target_mean, y

    def predict_step(self, batch: Any, batch_idx: int = 0) -> Tensor:
        return self(batch[0])
