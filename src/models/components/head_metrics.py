"""Accuracy and MAE per head, and one score over all heads for model selection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from src.models.components.head_kinds import kind_of
from src.models.components.head_specs import label_classes, label_values


class HeadMetrics(Metric):
    """Counts, per head, exact classes and absolute errors in parameter units.

    ``compute`` returns ``<head>/acc`` for classification and ordinal heads,
    ``<head>/mae`` (parameter units) for ordinal and regression heads, and
    ``score``: the mean over heads of the accuracy (classification, ordinal)
    or ``1 - MAE / (max - min)`` (regression). Every term lies in 0..1 with
    higher better, so one number ranks models whatever the mix of kinds; it is
    the multihead module's selection metric (``val/score_best``). A
    ``MetricCollection`` flattens the dict under its prefix (``val/note_number/acc``).

    Args:
        heads: the head specs, in label-column order.
    """

    full_state_update = False

    def __init__(self, heads: Sequence[dict[str, Any]]) -> None:
        super().__init__()
        self.heads = list(heads)
        count = len(self.heads)
        self.add_state("correct", torch.zeros(count), dist_reduce_fx="sum")
        self.add_state("abs_error", torch.zeros(count), dist_reduce_fx="sum")
        self.add_state("samples", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, outputs: dict[str, Tensor], labels: Tensor) -> None:
        """Outputs {head name: (N, outputs)} against label bytes (N, heads)."""
        for i, head in enumerate(self.heads):
            output, column, kind = outputs[head["name"]], labels[:, i], kind_of(head)
            if kind.predicts_classes:
                hits = kind.predicted_classes(head, output) == label_classes(column, head)
                self.correct[i] += hits.sum()
            error = kind.predicted_values(head, output) - label_values(column, head)
            self.abs_error[i] += error.abs().sum()
        self.samples += len(labels)

    def compute(self) -> dict[str, Tensor]:
        accuracy = self.correct / self.samples
        mae = self.abs_error / self.samples
        values: dict[str, Tensor] = {}
        terms = []
        for i, head in enumerate(self.heads):
            name, kind = head["name"], kind_of(head)
            if kind.predicts_classes:
                values[f"{name}/acc"] = accuracy[i]
            if kind.reports_mae:
                values[f"{name}/mae"] = mae[i]
            terms.append(kind.score(head, accuracy[i], mae[i]))
        values["score"] = torch.stack(terms).mean()
        return values
