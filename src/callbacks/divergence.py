"""Stop a run whose training loss is no longer finite.

A NaN or infinite loss poisons every weight within a step or two; training on
only produces NaN metrics and a run that looks ``finished``. ``StopOnDivergence``
checks the loss of every training step and raises ``DivergedError`` at the
first non-finite one: the run's status becomes ``diverged`` (with the epoch and
step), ``last.ckpt`` keeps the last finite weights, a single run exits with
status 1 and a sweep's trial fails. ``keep_going=true`` only warns (once), in
the spirit of ``trainer.detect_anomaly``, for who wants to see what happens next.
"""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch.callbacks import Callback

from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class DivergedError(UserInputError):
    """The training loss became NaN or infinite."""

    def __init__(self, value: float, epoch: int, step: int) -> None:
        self.value, self.epoch, self.step = value, epoch, step
        super().__init__(
            f"Training diverged: the loss is {value} at epoch {epoch}, step {step}. "
            "Lower model.optimizer.lr, check the data for NaN/inf values, or try "
            "trainer.gradient_clip_val=1.0; the last finite weights are in "
            "checkpoints/last.ckpt (callbacks.stop_on_divergence.keep_going=true trains on)."
        )


def _loss_of(outputs: Any) -> Any:
    if isinstance(outputs, dict):
        return outputs.get("loss")
    return outputs


class StopOnDivergence(Callback):
    """Raise ``DivergedError`` at the first non-finite training loss.

    Args:
        keep_going: warn once instead of stopping.
    """

    def __init__(self, keep_going: bool = False) -> None:
        self.keep_going = keep_going
        self._warned = False

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = _loss_of(outputs)
        if loss is None:
            return
        value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        if math.isfinite(value):
            return
        # global_step counts optimizer steps already taken; this was step global_step - 1
        error = DivergedError(value, trainer.current_epoch, max(trainer.global_step - 1, 0))
        if not self.keep_going:
            raise error
        if not self._warned:
            log.warning(f"{error} Training goes on (keep_going=true).")
            self._warned = True
