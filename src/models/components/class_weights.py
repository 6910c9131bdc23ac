"""Per-class loss weights: checked from the config, or counted on the training split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from src.utils.errors import UserInputError


def check_class_weights(
    class_weights: str | Sequence[float] | None, num_classes: int
) -> str | list[float] | None:
    """``None``, ``"auto"``, or a plain list of ``num_classes`` positive floats."""
    if class_weights is None or class_weights == "auto":
        return class_weights
    if isinstance(class_weights, str):
        raise UserInputError(
            f"model.class_weights={class_weights!r} is neither 'auto' nor a list of numbers: "
            "use model.class_weights=auto (from the training split's class counts) or a list, "
            "for example model.class_weights=[1,1,2]."
        )
    try:
        weights = [float(w) for w in class_weights]
    except (TypeError, ValueError) as error:
        raise UserInputError(
            f"model.class_weights={class_weights} must be numbers ({error})."
        ) from error
    if len(weights) != num_classes or min(weights) <= 0:
        raise UserInputError(
            f"model.class_weights={weights} must give one positive weight per class: "
            f"{num_classes} classes here. Or use model.class_weights=auto."
        )
    return weights


def set_criterion_weights(criterion: nn.Module, weights: Tensor) -> None:
    """Give ``weights`` to a loss that takes per-class weights (``CrossEntropyLoss``, ``NLLLoss``)."""
    if "weight" not in criterion._buffers:
        raise UserInputError(
            f"model.class_weights needs a loss with per-class weights (a 'weight' argument, as "
            f"torch.nn.CrossEntropyLoss has); model.criterion is {type(criterion).__name__}. "
            "Use model.criterion._target_=torch.nn.CrossEntropyLoss or drop model.class_weights."
        )
    current = criterion.weight
    device = current.device if current is not None else weights.device
    criterion.weight = weights.to(device=device, dtype=torch.float32)


def training_labels(datamodule: Any) -> Tensor:
    """The class labels of the training split: the in-memory split when the data module
    keeps one (``splits["train"]``), else read from its training loader."""
    splits = getattr(datamodule, "splits", None)
    if splits and "train" in splits:
        return splits["train"][1]
    return torch.cat([batch[1] for batch in datamodule.train_dataloader()])


def weights_from_counts(labels: Tensor, num_classes: int) -> Tensor:
    """scikit-learn's "balanced" weights: ``n / (num_classes * count_c)``; every class
    weighs the same in the loss summed over the training split."""
    counts = torch.bincount(labels.long().flatten(), minlength=num_classes)[:num_classes]
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise UserInputError(
            f"model.class_weights=auto: classes {missing} have no sample in the training "
            "split, so their weight is undefined. Give the weights as a list instead, "
            "for example model.class_weights=[...], or change the split."
        )
    return counts.sum() / (num_classes * counts.double())
