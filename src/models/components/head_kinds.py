"""What each head kind learns, predicts and reports: one class per kind.

A head spec (``src.models.components.head_specs``) stays plain data, its ``kind`` a
string (specs are saved in checkpoints' hyperparameters, which load with
``torch.load(weights_only=True)``); ``kind_of(head)`` turns it into its class. The
multihead module, its metrics, the output layers and the data modules' spec checks
all ask the kind, so a kind means the same everywhere, and a new kind is one class
here, added to ``HEAD_KINDS``.

What a head learns with is its loss (``src.models.components.head_losses``, chosen by
``model.head_losses``); the kind decides what is reported and scored:

- ``classification``: a class per value; reports accuracy.
- ``ordinal``: the classes are ordered (a velocity of 100 is nearer 101 than 40);
  reports accuracy and the MAE in parameter units.
- ``regression``: one value, trained on the range normalised to 0..1 (so heads of any
  units weigh alike) and mapped back to parameter units; reports the MAE.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from src.models.components.head_losses import loss_of
from src.models.components.head_specs import label_values

Head = dict[str, Any]


def class_values(head: Head, classes: Tensor) -> Tensor:
    """Parameter values of class indices; without a step the classes are the label bytes."""
    if head["step"] is None:
        return label_values(classes, head)
    return head["min"] + classes.float() * head["step"]


#: the most decimals a class name gets (256 byte values over a span of 10^-3 need 6)
MAX_NAME_DECIMALS = 6


def class_names(head: Head) -> list[str]:
    """What each class of a head stands for, as a label: its parameter value
    (``class_values``: a grid value, or a label byte's decoded value), with the fewest
    decimals that keep every class's name its own (note numbers ``40`` .. ``88``,
    ``0.002`` .. ``0.948``)."""
    values = class_values(head, torch.arange(head["num_classes"])).double().tolist()
    for decimals in range(MAX_NAME_DECIMALS + 1):
        names = [f"{v:.{decimals}f}" for v in values]
        names = [name[1:] if name.startswith("-") and float(name) == 0 else name for name in names]
        if len(set(names)) == len(names):
            return names
    return [repr(v) for v in values]  # values closer than 10^-6: in full


class HeadKind:
    """The contract of a head kind (stateless: one instance serves every head).

    The output layer, the loss and the predicted classes come from the head's loss
    (``head_losses.loss_of``); the kind adds the values, the metrics and the score.

    Attributes:
        name: the ``kind`` string of the specs.
        predicts_classes: reports ``<head>/acc`` (and appears in confusion matrices).
        reports_mae: reports ``<head>/mae`` in parameter units.
    """

    name: ClassVar[str]
    predicts_classes: ClassVar[bool] = True
    reports_mae: ClassVar[bool] = False

    def output_size(self, head: Head) -> int:
        """Outputs of the head's layer (its loss decides)."""
        return loss_of(head).output_size(head)

    def output_layer(self, in_features: int, head: Head) -> nn.Module:
        """The head's output layer on ``in_features`` shared features."""
        return loss_of(head).output_layer(in_features, head)

    def loss(
        self, head: Head, output: Tensor, labels: Tensor, ordinal_ce: float | None = None
    ) -> Tensor:
        """The loss on a batch (mean over samples) of the output (N, outputs) against the
        head's label bytes (N,); ``ordinal_ce`` weighs a ``distance`` loss's cross-entropy
        where the head's loss spec does not."""
        return loss_of(head, ordinal_ce)(head, output, labels)

    def predicted_classes(self, head: Head, output: Tensor) -> Tensor:
        """Class indices (N,) the head predicts."""
        return loss_of(head).predicted_classes(head, output)

    def predicted_values(self, head: Head, output: Tensor) -> Tensor:
        """Parameter values (N,) the head predicts, in the parameter's units."""
        return class_values(head, self.predicted_classes(head, output))

    def score(self, head: Head, accuracy: Tensor, mae: Tensor) -> Tensor:
        """The head's term of the multihead score: in 0..1, higher better."""
        return accuracy


class Classification(HeadKind):
    name = "classification"


class Ordinal(HeadKind):
    name = "ordinal"
    reports_mae = True


class Regression(HeadKind):
    name = "regression"
    predicts_classes = False
    reports_mae = True

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
def head_loss(
    head: Head, output: Tensor, labels: Tensor, ordinal_ce: float | None = None
) -> Tensor:
    return kind_of(head).loss(head, output, labels, ordinal_ce)


def predicted_classes(head: Head, output: Tensor) -> Tensor:
    return kind_of(head).predicted_classes(head, output)


def predicted_values(head: Head, output: Tensor) -> Tensor:
    return kind_of(head).predicted_values(head, output)
