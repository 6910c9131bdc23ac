"""What each label byte of a multihead data set means to a model head.

A head spec is a plain dict (it fills ``???`` values of model configs and is
saved with them)::

    {"name": "note_number", "kind": "classification", "num_classes": 49,
     "min": 40.0, "max": 88.0, "step": 1.0}

``num_classes`` is how many distinct values the label can take: the grid
``round((max - min) / step) + 1`` when the parameter has a ``step``, otherwise
256 (one per label byte). What a head of each ``kind`` predicts from them:
``src.models.components.head_kinds``.

The label byte ``q`` of a value ``x`` is ``floor(255 (x - min) / (max - min))``
(``vimh.encode_labels``). ``label_classes`` and ``label_values`` undo it: the
middle of the byte's interval, snapped to the grid when there is one (the
``midpoint`` rule, the default). A spec with ``"label_decoding": "nsmt"`` decodes as
NSMT's reader does, from the byte's lower edge, ``round(q / 255 (max - min) / step)``:
the same classes wherever a byte is narrower than half a step, else now and then one
class lower than the midpoint's (docs/vimh_format.md, "Decoding labels").
"""

from __future__ import annotations

from typing import Any

import torch

LABEL_LEVELS = 256

#: the ways to turn a label byte back into a value: where in the byte's interval
#: (in bytes from its lower edge) the value is taken to lie
LABEL_DECODINGS = {"midpoint": 0.5, "nsmt": 0.0}


def _byte_position(labels: torch.Tensor, head: dict[str, Any]) -> torch.Tensor:
    return labels.double() + LABEL_DECODINGS[head.get("label_decoding", "midpoint")]


def label_classes(labels: torch.Tensor, head: dict[str, Any]) -> torch.Tensor:
    """Class indices 0..num_classes-1 of label bytes (any shape) for one head."""
    if head["step"] is None:
        return labels.long()
    byte_width = (head["max"] - head["min"]) / (LABEL_LEVELS - 1)
    offset = _byte_position(labels, head) * byte_width  # midpoint: the interval's middle
    return torch.round(offset / head["step"]).long().clamp_(0, head["num_classes"] - 1)


def label_values(labels: torch.Tensor, head: dict[str, Any]) -> torch.Tensor:
    """Parameter values (float32) of label bytes for one head."""
    if head["step"] is not None:
        return (head["min"] + label_classes(labels, head).double() * head["step"]).float()
    byte_width = (head["max"] - head["min"]) / (LABEL_LEVELS - 1)
    values = head["min"] + _byte_position(labels, head) * byte_width
    return values.clamp(max=head["max"]).float()
