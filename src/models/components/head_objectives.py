"""What each head kind learns and predicts: its loss, its classes and its values.

Every function takes one head spec (``src.models.components.head_specs``), that
head's net output and, for losses, the raw label bytes of its column; the
multihead module, its metrics and the confusion-matrix callback all read
predictions from here, so a kind means the same everywhere.

- ``classification``: cross-entropy over the classes; predicts the argmax.
- ``ordinal``: the classes are ordered (a velocity of 100 is nearer 101 than
  40), so the loss is the distance between the expected class under the
  softmax and the true class, over the number of steps (0..1), plus a small
  cross-entropy term that keeps the distribution peaked. It predicts the
  rounded expected class, which is what the distance term trains.
- ``regression``: one value; the loss is the mean squared error on the range
  normalised to 0..1 (so heads of any units weigh alike), and the prediction
  is mapped back to parameter units.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from src.models.components.head_specs import label_classes, label_values


def _expected_class(logits: Tensor) -> Tensor:
    steps = torch.arange(logits.shape[1], device=logits.device, dtype=logits.dtype)
    return logits.softmax(dim=1) @ steps


def _normalised(values: Tensor, head: dict[str, Any]) -> Tensor:
    return (values - head["min"]) / (head["max"] - head["min"])


def head_loss(head: dict[str, Any], output: Tensor, labels: Tensor, ordinal_ce: float) -> Tensor:
    """The head's loss on a batch (mean over samples).

    Args:
        head: the head spec.
        output: the net's output for the head, (N, outputs).
        labels: the head's label bytes, (N,).
        ordinal_ce: weight of the cross-entropy term of an ordinal head.
    """
    if head["kind"] == "regression":
        return F.l1_loss(output[:, 0], _normalised(label_values(labels, head), head))
    classes = label_classes(labels, head)
    cross_entropy = F.cross_entropy(output, classes)
    if head["kind"] == "classification":
        return cross_entropy
    distance = (_expected_class(output) - classes).abs().mean() / (head["num_classes"] - 1)
    return distance + ordinal_ce * cross_entropy


def predicted_classes(head: dict[str, Any], output: Tensor) -> Tensor:
    """Class indices (N,) a classification or ordinal head predicts."""
    if head["kind"] == "ordinal":
        return _expected_class(output).round().long()
    return output.argmax(dim=1)


def class_values(head: dict[str, Any], classes: Tensor) -> Tensor:
    """Parameter values of class indices; without a step the classes are the label bytes."""
    if head["step"] is None:
        return label_values(classes, head)
    return head["min"] + classes.float() * head["step"]


def predicted_values(head: dict[str, Any], output: Tensor) -> Tensor:
    """Parameter values (N,) a head predicts, in the parameter's units."""
    if head["kind"] == "regression":
        span = head["max"] - head["min"]
        return (head["min"] + output[:, 0] * span).clamp(head["min"], head["max"])
    return class_values(head, predicted_classes(head, output))
