"""Single-label classification: cross-entropy and accuracy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from src.models.base_module import BaseLitModule


class ClassificationModule(BaseLitModule):
    """Classifies a batch ``(x, y)`` with integer labels ``y``.

    Logs ``{train,val,test}/loss`` and ``/acc``, and ``val/acc_best``.

    Args:
        net: maps inputs to ``num_classes`` logits.
        num_classes: number of classes (filled from the data when ``???``).
        optimizer, scheduler, compile, scheduler_monitor: see ``BaseLitModule``.
        criterion: the loss (cross-entropy when not given).
    """

    selection_metric = ("acc", "max")

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        criterion: nn.Module | None = None,
        compile: bool = False,
        scheduler_monitor: str = "val/loss",
    ) -> None:
        self.num_classes = num_classes
        super().__init__(
            net,
            optimizer,
            scheduler,
            criterion or nn.CrossEntropyLoss(),
            compile,
            scheduler_monitor,
        )

    def make_metrics(self) -> MetricCollection:
        # inputs are checked once by the data module, not on every batch
        return MetricCollection(
            {"acc": MulticlassAccuracy(self.num_classes, average="micro", validate_args=False)}
        )

    def model_step(self, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self.net(x)
        return self.criterion(logits, y), logits, y

    def update_metrics(self, metrics: MetricCollection, outputs: Tensor, targets: Tensor) -> None:
        metrics.update(outputs.argmax(dim=1), targets)

    def class_predictions(
        self, outputs: Tensor, targets: Tensor
    ) -> dict[str, tuple[Tensor, Tensor, int]]:
        return {"": (outputs.argmax(dim=1), targets, self.num_classes)}
