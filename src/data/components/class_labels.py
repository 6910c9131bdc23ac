"""What each class of a head is called, wherever classes are shown: figures, the
classification report, predictions.

The data module names them (``class_names(head)``: folder names, the digits kept, a
VIMH head's parameter values); a data module that does not, or a run without one,
numbers them 0..k-1.
"""

from __future__ import annotations

from typing import Any

from src.utils.errors import UserInputError


def class_labels(datamodule: Any, head: str, num_classes: int) -> list[str]:
    """The name of each of the ``num_classes`` classes of ``head`` ("" for a single-label
    task) that the model predicts, checked against the data's count."""
    namer = getattr(datamodule, "class_names", None)
    names = namer(head) if namer is not None else None
    if names is None:
        return [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise UserInputError(
            f"The data names {len(names)} classes for {f'head {head}' if head else 'its label'} "
            f"({', '.join(map(str, names[:3]))}, ...) but the model predicts {num_classes}: "
            "it was trained on other data."
        )
    return [str(name) for name in names]
