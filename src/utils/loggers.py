"""Logger factories where a logger needs a decision made at start-up."""

from __future__ import annotations

import os
from typing import Any


def wandb_logger(offline: bool | None = None, **kwargs: Any) -> Any:
    """A ``WandbLogger`` that runs offline unless the user has configured W&B.

    ``offline=None`` decides: online when ``WANDB_API_KEY`` is set (for example
    in the project's git-ignored ``.env``, which rootutils loads) or
    ``WANDB_MODE`` asks for it; offline otherwise, so a run never stalls on a
    login prompt or an unreachable server. wandb is imported only here.
    """
    from lightning.pytorch.loggers import WandbLogger

    if offline is None:
        mode = os.environ.get("WANDB_MODE", "")
        offline = mode in ("offline", "disabled") or (
            not os.environ.get("WANDB_API_KEY") and mode != "online"
        )
    return WandbLogger(offline=offline, **kwargs)
