"""How many batches a split gives, checked where a data module builds its loader.

Both data paths (in-memory tensors and file-backed folders) cut a split into
``data.batch_size`` batches per process and drop the incomplete one when
``drop_last`` is on (nets with BatchNorm). Two things go wrong the same way in
both, so they are checked once here: a split that gives no batch at all (one
message, what to change), and a fractional ``trainer.limit_<split>_batches`` of
fewer batches than one, which Lightning would run as zero batches (one batch
instead, with a warning).
"""

from __future__ import annotations

import math
from typing import Any

from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__, rank_zero_only=True)


def check_batch_count(
    trainer: Any, split: str, size: int, batch_size: int, drop_last: bool, where: str,
    unit: str = "samples",
) -> None:  # fmt: skip
    """Stop when ``split`` (``size`` samples of ``where``) gives no batch per process, and
    make a fractional ``limit_<split>_batches`` of less than one batch one batch."""
    world = trainer.world_size if trainer is not None else 1
    per_process = math.ceil(size / world)
    batches = per_process // batch_size if drop_last else math.ceil(per_process / batch_size)
    if batches == 0:
        raise UserInputError(
            f"The {split} split of {where} has {size} {unit}, fewer than "
            f"data.batch_size={batch_size} per process, and incomplete batches are dropped "
            "(drop_last, switched on for nets with BatchNorm). Lower data.batch_size or give "
            f"the split more {unit}."
        )
    if trainer is None:
        return
    key = f"limit_{split}_batches"
    limit = getattr(trainer, key, None)
    # the batches the loader gives (drop_last counted), as Lightning multiplies the limit
    if isinstance(limit, float) and 0 < limit < 1 and int(batches * limit) == 0:
        log.warning(
            f"trainer.{key}={limit} of the {batches} {split} batches is less than one "
            f"batch: running 1 batch instead (set ++trainer.{key}=1 to say so)."
        )
        setattr(trainer, key, 1)
