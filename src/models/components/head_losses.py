"""The losses a head can learn with, per head kind, chosen by config (``model.head_losses``).

A head's loss is plain data in its spec, ``head["loss"] = {"name": "huber", "delta": 0.1}``
(saved in checkpoints' hyperparameters, which load with ``torch.load(weights_only=True)``);
``loss_of(head)`` turns it into one of the classes here. A head without one learns with its
kind's default (``DEFAULT_LOSS``), as every head did before losses were configurable.

- regression (targets normalised to 0..1 over the parameter's range, so heads of any units
  weigh alike): ``l1`` (default), ``mse``, ``huber`` (``delta``: where it turns from
  quadratic to linear, in units of the range; scaled by 1/delta, as PyTorch's smooth L1, so
  that large errors learn at l1's pace).
- classification: ``cross_entropy`` (default), ``label_smoothing`` (``smoothing``: the share
  of probability spread evenly over all classes), ``soft_targets`` (a Gaussian over the
  distance to the true class, ``width`` classes wide: for quantised parameters, where a
  neighbouring class is nearly right).
- ordinal: ``distance`` (default: the distance between the softmax's expected class and the
  true one, over the number of steps, plus ``ce_weight`` x cross-entropy, which keeps the
  distribution peaked; predicts the rounded expected class) and ``coral`` (CORAL, Cao et al.
  2020: K-1 cumulative logits "class > k" that share one weight vector and differ by a
  bias, so their probabilities fall with k; binary cross-entropy averaged over the K-1
  thresholds; predicts the number of thresholds passed). ``coral`` has its own output layer,
  so the net must be built with the same ``head_losses`` (the vimh_* model configs pass
  ``net.head_losses: ${..head_losses}``).

A new loss is a class here with ``name``, ``kind`` and ``options`` (its keyword defaults).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.components.head_specs import label_classes, label_values
from src.utils.errors import UserInputError

Head = dict[str, Any]

#: the loss of a head whose spec names none, by kind
DEFAULT_LOSS = {"classification": "cross_entropy", "ordinal": "distance", "regression": "l1"}


class HeadLoss:
    """One loss for heads of one kind: its output layer, the loss and the prediction.

    Attributes:
        name: the name configs use.
        kind: the head kind it serves.
        options: option name -> default value (numbers).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    options: ClassVar[dict[str, float]] = {}

    def __init__(self, **options: float) -> None:
        self.values = {**self.options, **{k: float(v) for k, v in options.items()}}

    def output_size(self, head: Head) -> int:
        """Outputs of the head's layer: one logit per class unless the loss says otherwise."""
        return int(head["num_classes"])

    def output_layer(self, in_features: int, head: Head) -> nn.Module:
        return nn.Linear(in_features, self.output_size(head))

    def __call__(self, head: Head, output: Tensor, labels: Tensor) -> Tensor:
        """The mean loss of outputs (N, outputs) against the head's label bytes (N,)."""
        raise NotImplementedError

    def predicted_classes(self, head: Head, output: Tensor) -> Tensor:
        return output.argmax(dim=1)


class _Regression(HeadLoss):
    kind = "regression"

    def output_size(self, head: Head) -> int:
        return 1

    def __call__(self, head: Head, output: Tensor, labels: Tensor) -> Tensor:
        target = (label_values(labels, head) - head["min"]) / (head["max"] - head["min"])
        return self.distance(output[:, 0], target)

    def distance(self, prediction: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def predicted_classes(self, head: Head, output: Tensor) -> Tensor:
        raise TypeError(f"A regression head ({head['name']}) predicts values, not classes.")


class L1(_Regression):
    name = "l1"

    def distance(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(prediction, target)


class MSE(_Regression):
    name = "mse"

    def distance(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(prediction, target)


class Huber(_Regression):
    name = "huber"
    options = {"delta": 0.1}

    def distance(self, prediction: Tensor, target: Tensor) -> Tensor:
        # Huber's loss over delta (PyTorch's smooth L1): errors beyond delta get L1's gradient.
        # Huber's own scale gives them delta times less, which with delta = 0.1 of the range
        # learns ten times slower than l1 (measured: velocity MAE 18.9 against l1's 7.7).
        return F.smooth_l1_loss(prediction, target, beta=self.values["delta"])


class CrossEntropy(HeadLoss):
    name = "cross_entropy"
    kind = "classification"

    def __call__(self, head: Head, output: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(output, label_classes(labels, head))


class LabelSmoothing(CrossEntropy):
    name = "label_smoothing"
    options = {"smoothing": 0.1}

    def __call__(self, head: Head, output: Tensor, labels: Tensor) -> Tensor:
        classes = label_classes(labels, head)
        return F.cross_entropy(output, classes, label_smoothing=self.values["smoothing"])


class SoftTargets(CrossEntropy):
    name = "soft_targets"
    options = {"width": 1.0}

    def __call__(self, head: Head, output: Tensor, labels: Tensor) -> Tensor:
        classes = label_classes(labels, head).to(output.dtype)
        steps = torch.arange(output.shape[1], device=output.device, dtype=output.dtype)
        distance = (steps[None, :] - classes[:, None]) / self.values["width"]
        targets = (-0.5 * distance**2).softmax(dim=1)  # a Gaussian over the classes, sum 1
        return -(targets * output.log_softmax(dim=1)).sum(dim=1).mean()


def expected_class(logits: Tensor) -> Tensor:
    steps = torch.arange(logits.shape[1], device=logits.device, dtype=logits.dtype)
    return logits.softmax(dim=1) @ steps


class Distance(HeadLoss):
    name = "distance"
    kind = "ordinal"
    options = {"ce_weight": 0.1}

    def __call__(self, head: Head, output: Tensor, labels: Tensor) -> Tensor:
        classes = label_classes(labels, head)
        distance = (expected_class(output) - classes).abs().mean() / (head["num_classes"] - 1)
        return distance + self.values["ce_weight"] * F.cross_entropy(output, classes)

    def predicted_classes(self, head: Head, output: Tensor) -> Tensor:
        return expected_class(output).round().long()


class CoralLayer(nn.Module):
    """K-1 cumulative logits ``w . h + b_k``: one shared weight vector, one bias per threshold
    (started falling, as CORAL's biases end up), so P(class > k) falls with k."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.score = nn.Linear(in_features, 1, bias=False)
        start = torch.arange(num_classes - 1, 0, -1, dtype=torch.float32) / (num_classes - 1)
        self.bias = nn.Parameter(start)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.score(hidden) + self.bias


class Coral(HeadLoss):
    name = "coral"
    kind = "ordinal"

    def output_size(self, head: Head) -> int:
        return int(head["num_classes"]) - 1

    def output_layer(self, in_features: int, head: Head) -> nn.Module:
        return CoralLayer(in_features, int(head["num_classes"]))

    def __call__(self, head: Head, output: Tensor, labels: Tensor) -> Tensor:
        classes = label_classes(labels, head)
        thresholds = torch.arange(output.shape[1], device=output.device)
        above = (classes[:, None] > thresholds[None, :]).to(output.dtype)
        return F.binary_cross_entropy_with_logits(output, above)

    def predicted_classes(self, head: Head, output: Tensor) -> Tensor:
        return (output > 0).sum(dim=1)  # sigmoid > 0.5


#: every loss by its config name: a new loss is a class above, added here
HEAD_LOSSES: dict[str, type[HeadLoss]] = {
    loss.name: loss for loss in (L1, MSE, Huber, CrossEntropy, LabelSmoothing, SoftTargets)
}
HEAD_LOSSES |= {loss.name: loss for loss in (Distance, Coral)}


def loss_of(head: Head, ordinal_ce: float | None = None) -> HeadLoss:
    """The loss object of a head spec (its ``loss`` entry, else its kind's default);
    ``ordinal_ce`` is the ``distance`` loss's ``ce_weight`` where the spec gives none."""
    spec = dict(head.get("loss") or {"name": DEFAULT_LOSS[head["kind"]]})
    name = spec.pop("name")
    if name == "distance" and ordinal_ce is not None:
        spec.setdefault("ce_weight", ordinal_ce)
    return HEAD_LOSSES[name](**spec)


def losses_by_kind() -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for name, loss in HEAD_LOSSES.items():
        kinds.setdefault(loss.kind, []).append(name)
    return kinds


def _loss_spec(head: Head, chosen: Any, ordinal_ce: float) -> dict[str, Any]:
    spec = {"name": chosen} if isinstance(chosen, str) else chosen
    where = f"model.head_losses: {head['name']} ({head['kind']})"
    allowed = losses_by_kind()[head["kind"]]
    if not isinstance(spec, Mapping) or spec.get("name") not in allowed:
        raise UserInputError(
            f"{where} has loss {chosen!r}; a {head['kind']} head takes one of {allowed} "
            "(a name, or {name: <loss>, <option>: <value>})."
        )
    spec = dict(spec)
    name = spec["name"]
    loss = HEAD_LOSSES[name]
    defaults = {"ce_weight": ordinal_ce} if name == "distance" else {}
    unknown = sorted(set(spec) - {"name"} - set(loss.options))
    bad = [k for k, v in spec.items() if k != "name" and not isinstance(v, int | float)]
    if unknown or bad:
        raise UserInputError(
            f"{where}: loss {name} takes the options {sorted(loss.options) or 'none'} "
            f"(numbers), got {sorted(set(spec) - {'name'})}."
        )
    return {
        "name": name,
        **loss.options,
        **defaults,
        **{k: float(spec[k]) for k in spec if k != "name"},
    }


def assign_losses(
    heads: Sequence[Mapping[str, Any]],
    head_losses: Mapping[str, Any] | None,
    ordinal_ce: float = 0.1,
) -> list[Head]:
    """Copies of the head specs, each with its ``loss`` spec (every option filled in).

    Args:
        heads: the head specs.
        head_losses: head name or head kind -> a loss name or ``{name: <loss>, <option>:
            <value>}``; a head's own name wins over its kind; heads named by neither keep
            the loss their spec has, else their kind's default.
        ordinal_ce: ``ce_weight`` of a ``distance`` loss that does not set it.
    """
    head_losses = dict(head_losses or {})
    names = [str(head["name"]) for head in heads]
    unknown = sorted(set(head_losses) - set(names) - set(DEFAULT_LOSS))
    if unknown:
        raise UserInputError(
            f"model.head_losses names {unknown}, which are neither heads of this data "
            f"({names}) nor head kinds ({sorted(DEFAULT_LOSS)})."
        )
    assigned = []
    for head in heads:
        head = dict(head)
        chosen = head_losses.get(head["name"], head_losses.get(head["kind"]))
        if chosen is None:
            chosen = head.get("loss") or DEFAULT_LOSS[head["kind"]]
        head["loss"] = _loss_spec(head, chosen, ordinal_ce)
        assigned.append(head)
    return assigned
