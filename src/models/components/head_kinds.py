"""What each head kind learns, predicts and reports: one class per kind.

A head spec (``src.models.components.head_specs``) stays plain data, its ``kind`` a
string (specs are saved in checkpoints' hyperparameters, which load with
``torch.load(weights_only=True)``); ``kind_of(head)`` turns it into its class. The
multihead module, its metrics, the output layers and the data modules' spec checks
all ask the kind, so a kind means the same everywhere, and a new kind is one class
here, added to ``HEAD_KINDS``.

- ``classification``: cross-entropy over the classes; predicts the argmax.
- ``ordinal``: the classes are ordered (a velocity of 100 is nearer 101 than
  40), so the loss is the distance between the expected class under the
  softmax and the true class, over the number of steps (0..1), plus a small
  cross-entropy term that keeps the distribution peaked. It predicts the
  rounded expected class, which is what the distance term trains.
- ``regression``: one value; the loss is the mean absolute error on the range
  normalised to 0..1 (so heads of any units weigh alike), and the prediction
  is mapped back to parameter units.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from src.models.components.head_specs import label_classes, label_values

Head = dict[str, Any]


def _expected_class(logits: Tensor) -> Tensor:
    steps = torch.arange(logits.shape[1], device=logits.device, dtype=logits.dtype)
    return logits.softmax(dim=1) @ steps


def _normalised(values: Tensor, head: Head) -> Tensor:
    return (values - head["min"]) / (head["max"] - head["min"])


def class_values(head: Head, classes: Tensor) -> Tensor:
    """Parameter values of class indices; without a step the classes are the label bytes."""
    if head["step"] is None:
        return label_values(classes, head)
    return head["min"] + classes.float() * head["step"]


class HeadKind:
    """The contract of a head kind (stateless: one instance serves every head).

    Attributes:
        name: the ``kind`` string of the specs.
        predicts_classes: reports ``<head>/acc`` (and appears in confusion matrices).
        reports_mae: reports ``<head>/mae`` in parameter units.
    """

    name: ClassVar[str]
    predicts_classes: ClassVar[bool] = True
    reports_mae: ClassVar[bool] = False

    def output_size(self, head: Head) -> int:
        """Outputs of the head's layer: one logit per class by default."""
        return int(head["num_classes"])

    def loss(self, head: Head, output: Tensor, labels: Tensor, ordinal_ce: float) -> Tensor:
        """The loss on a batch (mean over samples) of the output (N, outputs) against the
        head's label bytes (N,); ``ordinal_ce`` weighs an ordinal head's cross-entropy."""
        raise NotImplementedError

    def predicted_classes(self, head: Head, output: Tensor) -> Tensor:
        """Class indices (N,) the head predicts."""
        return output.argmax(dim=1)

    def predicted_values(self, head: Head, output: Tensor) -> Tensor:
        """Parameter values (N,) the head predicts, in the parameter's units."""
        return class_values(head, self.predicted_classes(head, output))

    def score(self, head: Head, accuracy: Tensor, mae: Tensor) -> Tensor:
        """The head's term of the multihead score: in 0..1, higher better."""
        return accuracy


class Classification(HeadKind):
    name = "classification"

    def loss(self, head: Head, output: Tensor, labels: Tensor, ordinal_ce: float) -> Tensor:
        return F.cross_entropy(output, label_classes(labels, head))


class Ordinal(HeadKind):
    name = "ordinal"
    reports_mae = True

    def loss(self, head: Head, output: Tensor, labels: Tensor, ordinal_ce: float) -> Tensor:
        classes = label_classes(labels, head)
        distance = (_expected_class(output) - classes).abs().mean() / (head["num_classes"] - 1)
        return distance + ordinal_ce * F.cross_entropy(output, classes)

    def predicted_classes(self, head: Head, output: Tensor) -> Tensor:
        return _expected_class(output).round().long()


class Regression(HeadKind):
    name = "regression"
    predicts_classes = False
    reports_mae = True

    def output_size(self, head: Head) -> int:
        return 1

    def loss(self, head: Head, output: Tensor, labels: Tensor, ordinal_ce: float) -> Tensor:
        return F.l1_loss(output[:, 0], _normalised(label_values(labels, head), head))

    def predicted_classes(self, head: Head, output: Tensor) -> Tensor:
        raise TypeError(f"A regression head ({head['name']}) predicts values, not classes.")

    def predicted_values(self, head: Head, output: Tensor) -> Tensor:
        span = head["max"] - head["min"]
        return (head["min"] + output[:, 0] * span).clamp(head["min"], head["max"])

    def score(self, head: Head, accuracy: Tensor, mae: Tensor) -> Tensor:
        return 1 - mae / (head["max"] - head["min"])


#: every head kind by its spec name: a new kind is a class above, added here
HEAD_KINDS: dict[str, HeadKind] = {
    kind.name: kind() for kind in (Classification, Ordinal, Regression)
}


def kind_of(head: Head) -> HeadKind:
    """The kind of a head spec (a ``KeyError`` names an unknown kind)."""
    try:
        return HEAD_KINDS[head["kind"]]
    except KeyError:
        raise KeyError(
            f"head {head.get('name')!r} has kind {head.get('kind')!r}, not one of "
            f"{sorted(HEAD_KINDS)}"
        ) from None


# the functions the tests and callbacks call, each asking the head's kind
def head_loss(head: Head, output: Tensor, labels: Tensor, ordinal_ce: float) -> Tensor:
    return kind_of(head).loss(head, output, labels, ordinal_ce)


def predicted_classes(head: Head, output: Tensor) -> Tensor:
    return kind_of(head).predicted_classes(head, output)


def predicted_values(head: Head, output: Tensor) -> Tensor:
    return kind_of(head).predicted_values(head, output)
