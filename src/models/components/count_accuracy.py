"""Accuracy as a count of correct predictions: what a classification run logs as ``acc``."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class CountAccuracy(Metric):
    """Correct predictions / samples, summed over the epoch (and over processes under DDP).

    The same number as torchmetrics' ``MulticlassAccuracy(average="micro")`` on predicted
    classes, which counts true and false positives and negatives of every class on every
    update: about twice the per-step cost (~85 against ~40 us a batch on the build
    machines), and the training step calls it every batch.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("samples", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predicted: Tensor, target: Tensor) -> None:
        """Predicted classes against the true ones (any equal shapes)."""
        self.correct += (predicted == target).sum()
        self.samples += target.numel()

    def compute(self) -> Tensor:
        return self.correct.float() / self.samples
