"""What each label of a VIMH data set means to a model head.

A head spec is a plain dict (it fills ``???`` values of model configs and is
saved with them)::

    {"name": "note_number", "kind": "classification", "num_classes": 49,
     "min": 40.0, "max": 88.0, "step": 1.0}

``num_classes`` is how many distinct values the label can take: the grid
``round((max - min) / step) + 1`` when the parameter has a ``step``, otherwise
256 (one per label byte). Classification and ordinal heads predict that many
classes; a regression head predicts one value in ``[min, max]``.

The label byte ``q`` of a value ``x`` is ``floor(255 (x - min) / (max - min))``
(``vimh.encode_labels``). ``label_classes`` and ``label_values`` undo it: the
middle of the byte's interval, snapped to the grid when there is one.
"""

from __future__ import annotations

from typing import Any

import torch

from src.utils.errors import UserInputError

HEAD_KINDS = ("classification", "ordinal", "regression")
LABEL_LEVELS = 256


def head_specs(
    info: dict[str, Any],
    head_kind: str = "classification",
    head_kinds: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One head spec per parameter of the data set's JSON, in ``param_id`` order.

    Args:
        info: the data set's ``vimh_dataset_info.json``.
        head_kind: the kind of every head not named in ``head_kinds``.
        head_kinds: parameter name -> kind, for heads of another kind.
    """
    names = list(info["parameter_names"])
    head_kinds = dict(head_kinds or {})
    unknown = sorted(set(head_kinds) - set(names))
    if unknown:
        raise UserInputError(
            f"data.head_kinds names {unknown}, which are not parameters of this data set: {names}."
        )
    heads = []
    for name in names:
        kind = head_kinds.get(name, head_kind)
        if kind not in HEAD_KINDS:
            raise UserInputError(
                f"Head kind {kind!r} for {name} is not one of {HEAD_KINDS} "
                "(data.head_kind / data.head_kinds)."
            )
        mapping = info["parameter_mappings"][name]
        low, high, step = float(mapping["min"]), float(mapping["max"]), mapping.get("step")
        num_classes = LABEL_LEVELS if step is None else round((high - low) / step) + 1
        if num_classes > LABEL_LEVELS:
            raise UserInputError(
                f"{name}: step {step} over [{low}, {high}] makes {num_classes} values, more "
                f"than the {LABEL_LEVELS} a label byte tells apart."
            )
        heads.append(
            {
                "name": name,
                "kind": kind,
                "num_classes": num_classes,
                "min": low,
                "max": high,
                "step": None if step is None else float(step),
            }
        )
    return heads


def label_classes(labels: torch.Tensor, head: dict[str, Any]) -> torch.Tensor:
    """Class indices 0..num_classes-1 of label bytes (any shape) for one head."""
    if head["step"] is None:
        return labels.long()
    byte_width = (head["max"] - head["min"]) / (LABEL_LEVELS - 1)
    offset = (labels.double() + 0.5) * byte_width  # the middle of the byte's interval
    return torch.round(offset / head["step"]).long().clamp_(0, head["num_classes"] - 1)


def label_values(labels: torch.Tensor, head: dict[str, Any]) -> torch.Tensor:
    """Parameter values (float32) of label bytes for one head."""
    if head["step"] is not None:
        return (head["min"] + label_classes(labels, head).double() * head["step"]).float()
    byte_width = (head["max"] - head["min"]) / (LABEL_LEVELS - 1)
    values = head["min"] + (labels.double() + 0.5) * byte_width
    return values.clamp(max=head["max"]).float()
