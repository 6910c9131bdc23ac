"""Single-label classification: cross-entropy and accuracy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from src.models.base_module import BaseLitModule, update_each
from src.models.components.class_weights import (
    check_class_weights,
    set_criterion_weights,
    training_labels,
    weights_from_counts,
)
from src.models.components.count_accuracy import CountAccuracy
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class ClassificationModule(BaseLitModule):
    """Classifies a batch ``(x, y)`` with integer labels ``y``.

    Logs ``{train,val,test}/loss`` and ``/acc``, and ``val/acc_best``.

    Args:
        net: maps inputs to ``num_classes`` logits.
        num_classes: number of classes (filled from the data when ``???``).
        optimizer, scheduler, compile, scheduler_monitor, monitor, mode: see
            ``BaseLitModule`` (the model config sets monitor and mode).
        criterion: the loss (cross-entropy when not given).
        class_weights: per-class weights of the loss: ``"auto"`` (``n / (k * count)``
            from the training split's class counts, counted when fitting starts),
            a list of ``num_classes`` positive numbers, or ``None`` (unweighted).
            They become the criterion's ``weight`` buffer, saved in checkpoints.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        criterion: nn.Module | None = None,
        compile: bool = False,
        scheduler_monitor: str = "val/loss",
        monitor: str = "val/acc",
        mode: str = "max",
        class_weights: str | Sequence[float] | None = None,
    ) -> None:
        self.num_classes = num_classes
        # a plain list (not Hydra's ListConfig) in the saved hyperparameters
        class_weights = check_class_weights(class_weights, num_classes)
        super().__init__(
            net,
            optimizer,
            scheduler,
            criterion or nn.CrossEntropyLoss(),
            compile,
            scheduler_monitor,
            monitor,
            mode,
        )
        if class_weights is not None:
            # "auto": ones until setup("fit") counts the training split; a buffer in both
            # cases, so a weighted run's checkpoint loads into a freshly built module
            initial = [1.0] * num_classes if class_weights == "auto" else class_weights
            set_criterion_weights(self.criterion, torch.tensor(initial))

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.hparams.class_weights == "auto":
            # Lightning sets the data module up before the model
            labels = training_labels(self.trainer.datamodule)
            weights = weights_from_counts(labels, self.num_classes)
            set_criterion_weights(self.criterion, weights)
            log.info(f"Class weights from the training split: {weights.tolist()}")

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"acc": CountAccuracy()})

    def model_step(self, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self.net(x)
        return self.criterion(logits, y), logits, y

    def update_metrics(self, metrics: MetricCollection, outputs: Tensor, targets: Tensor) -> None:
        update_each(metrics, outputs.argmax(dim=1), targets)

    def class_predictions(
        self, outputs: Tensor, targets: Tensor
    ) -> dict[str, tuple[Tensor, Tensor, int]]:
        return {"": (outputs.argmax(dim=1), targets, self.num_classes)}
