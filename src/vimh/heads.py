"""Head specs of a VIMH data set: one per parameter of its ``vimh_dataset_info.json``
(the spec's format: ``src.models.components.head_specs``)."""

from __future__ import annotations

from typing import Any

from src.models.components.head_kinds import HEAD_KINDS
from src.models.components.head_specs import LABEL_DECODINGS, LABEL_LEVELS
from src.utils.errors import UserInputError


def head_specs(
    info: dict[str, Any],
    head_kind: str = "classification",
    head_kinds: dict[str, str] | None = None,
    label_decoding: str = "midpoint",
) -> list[dict[str, Any]]:
    """One head spec per parameter of the data set's JSON, in ``param_id`` order.

    Args:
        info: the data set's ``vimh_dataset_info.json``.
        head_kind: the kind of every head not named in ``head_kinds``.
        head_kinds: parameter name -> kind, for heads of another kind.
        label_decoding: ``midpoint`` (the default) or ``nsmt`` (NSMT's reader's rule, for
            exact comparability; ``components.head_specs``). Specs carry it only when it is
            not the default.
    """
    if label_decoding not in LABEL_DECODINGS:
        raise UserInputError(
            f"data.label_decoding={label_decoding!r} is not one of {tuple(LABEL_DECODINGS)} "
            "(midpoint: the middle of each label byte's interval; nsmt: NSMT's reader's rule)."
        )
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
                f"Head kind {kind!r} for {name} is not one of {tuple(HEAD_KINDS)} "
                "(data.head_kind / data.head_kinds)."
            )
        mapping = info["parameter_mappings"][name]
        low, high, step = float(mapping["min"]), float(mapping["max"]), mapping.get("step")
        if mapping.get("continuous"):  # its step is only the label byte's resolution
            step = None
        num_classes = LABEL_LEVELS if step is None else round((high - low) / step) + 1
        if num_classes > LABEL_LEVELS:
            raise UserInputError(
                f"{name}: step {step} over [{low}, {high}] makes {num_classes} values, more "
                f"than the {LABEL_LEVELS} a label byte tells apart."
            )
        head = {
            "name": name,
            "kind": kind,
            "num_classes": num_classes,
            "min": low,
            "max": high,
            "step": None if step is None else float(step),
        }
        if label_decoding != "midpoint":
            head["label_decoding"] = label_decoding
        heads.append(head)
    return heads
