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

    def __setattr__(self, name: str, value: object) -> None:
        # torchmetrics' update wrapper sets these two plain attributes at every update;
        # nn.Module.__setattr__ looks for parameters, buffers and submodules first
        if name in ("_computed", "_update_count"):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def update(self, predicted: Tensor, target: Tensor) -> None:
        """Predicted classes against the true ones (any equal shapes)."""
        # add_: what `+=` does to a tensor, without setting the attribute again after it
        self.correct.add_((predicted == target).sum())
        self.samples.add_(target.numel())

    def compute(self) -> Tensor:
        return self.correct.float() / self.samples
