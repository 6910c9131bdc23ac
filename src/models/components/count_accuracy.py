"""Accuracy as a count of correct predictions: what a classification run logs as ``acc``."""

from __future__ import annotations

import functools
from collections.abc import Callable

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

    def _wrap_update(self, update: Callable[[Tensor, Tensor], None]) -> Callable:
        """torchmetrics' wrapper of ``update``, less what this update does not need.

        Theirs also turns gradients off around the update and rewraps device errors, and it
        sets its two attributes through ``nn.Module.__setattr__``: ~30 us a training step
        inside a fit (measured), where the update itself takes ~30. This update compares
        whole numbers and builds no graph; the two attributes (the cached result dropped,
        the update counted) are kept the same way here.
        """

        @functools.wraps(update)
        def counted(predicted: Tensor, target: Tensor) -> None:
            attributes = self.__dict__
            attributes["_computed"] = None
            attributes["_update_count"] += 1
            update(predicted, target)

        return counted

    def update(self, predicted: Tensor, target: Tensor) -> None:
        """Predicted classes against the true ones (any equal shapes)."""
        # add_: what `+=` does to a tensor, without setting the attribute again after it
        self.correct.add_((predicted == target).sum())
        self.samples.add_(target.numel())

    def compute(self) -> Tensor:
        return self.correct.float() / self.samples
