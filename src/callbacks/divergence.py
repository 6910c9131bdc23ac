"""Stop a run whose training loss is no longer finite.

A NaN or infinite loss poisons every weight within a step or two; training on
only produces NaN metrics and a run that looks ``finished``. ``StopOnDivergence``
checks the loss of every training step (on an accelerator, a group of steps at a
time) and raises ``DivergedError`` at the first non-finite one: the run's status
becomes ``diverged`` (with the epoch and step), ``last.ckpt`` keeps the last finite
weights, a single run exits with status 1 and a sweep's trial fails.
``keep_going=true`` only warns (once), in the spirit of ``trainer.detect_anomaly``, for
who wants to see what happens next.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class DivergedError(UserInputError):
    """The training loss became NaN or infinite."""

    def __init__(self, value: float, epoch: int, step: int, last: str | None = None) -> None:
        self.value, self.epoch, self.step = value, epoch, step
        kept = (
            f"the last finite weights are in {last}"
            if last
            else "no checkpoint was written before it"
        )
        super().__init__(
            f"Training diverged: the loss is {value} at epoch {epoch}, step {step}. "
            "Lower model.optimizer.lr, check the data for NaN/inf values, or try "
            f"trainer.gradient_clip_val=1.0; {kept} "
            "(callbacks.stop_on_divergence.keep_going=true trains on)."
        )


def _last_checkpoint(trainer: Any) -> str | None:
    """The ``last.ckpt`` this fit's checkpoint callbacks have written, if any."""
    from pathlib import Path

    for callback in getattr(trainer, "checkpoint_callbacks", None) or []:
        path = getattr(callback, "last_model_path", "")
        if path and Path(path).is_file():
            return str(path)
    return None


def _loss_of(outputs: Any) -> Any:
    if isinstance(outputs, dict):
        return outputs.get("loss")
    return outputs


class StopOnDivergence(Callback):
    """Raise ``DivergedError`` at the first non-finite training loss.

    Reading a loss on the host waits for the accelerator to finish the step: once a step
    on a GPU, that stall costs throughput. So on an accelerator the losses are kept where
    they are and read together every ``check_every_n_steps`` steps (one transfer), and
    always before a validation, at the end of an epoch and of training, and before any
    checkpoint is written: the error names the first non-finite step all the same, and
    no checkpoint holds weights trained past it. On the CPU a read costs nothing and
    every step is checked as it ends.

    Args:
        keep_going: warn once instead of stopping.
        check_every_n_steps: steps between reads; ``null``: every step on the CPU,
            every 50 on an accelerator.
    """

    ACCELERATOR_STEPS = 50

    def __init__(self, keep_going: bool = False, check_every_n_steps: int | None = None) -> None:
        if check_every_n_steps is not None and (
            not isinstance(check_every_n_steps, int)
            or isinstance(check_every_n_steps, bool)
            or check_every_n_steps < 1
        ):
            raise UserInputError(
                f"callbacks.stop_on_divergence.check_every_n_steps={check_every_n_steps!r}: "
                "give a whole number >= 1, or null (every step on the CPU, every "
                f"{self.ACCELERATOR_STEPS} on an accelerator)."
            )
        self.keep_going = keep_going
        self.check_every_n_steps = check_every_n_steps
        self._warned = False
        self._pending: list[tuple[int, int, Any]] = []  # (epoch, step, loss) not read yet
        self._every: int | None = None  # steps between reads in this fit, from its first step
        self._trainer: Any = None

    def _steps_between_checks(self, pl_module: Any) -> int:
        if self.check_every_n_steps is not None:
            return self.check_every_n_steps
        return 1 if pl_module.device.type == "cpu" else self.ACCELERATOR_STEPS

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._every = None  # the module is on its device now; read at the first step
        self._trainer = trainer  # where the last finite checkpoint is, said in the error

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # as little as possible at every step: between an optimizer step and the next batch
        # a property or a read here costs ~10x what it does in a timeit loop (measured in
        # a fit: the module's device 10 us, float(loss) 9 us)
        loss = _loss_of(outputs)
        if loss is None or self._warned:  # keep_going warns once, then reads nothing
            return
        if self._every is None:
            self._every = self._steps_between_checks(pl_module)
        if self._every == 1:  # read as each step ends (the CPU)
            value = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
            if not math.isfinite(value):
                step = max(trainer.global_step - 1, 0)  # counts the step just taken
                self._diverged(DivergedError(value, trainer.current_epoch, step))
            return
        # global_step counts optimizer steps already taken; this was step global_step - 1
        step = max(trainer.global_step - 1, 0)
        loss = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
        self._pending.append((trainer.current_epoch, step, loss))
        if len(self._pending) >= self._every:
            self.check()

    def check(self) -> None:
        """Read the losses not read yet; raise (or warn) at the first non-finite one."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        losses = [loss for _, _, loss in pending]
        if len(losses) == 1:
            values = [float(losses[0])]
        else:  # one transfer for all of them
            values = torch.stack([loss.float() for loss in losses]).cpu().tolist()
        for (epoch, step, _), value in zip(pending, values, strict=True):
            if not math.isfinite(value):
                self._diverged(DivergedError(value, epoch, step))
                return

    def _diverged(self, error: DivergedError) -> None:
        last = _last_checkpoint(self._trainer)
        if last:
            error = DivergedError(error.value, error.epoch, error.step, last)
        if not self.keep_going:
            raise error
        log.warning(f"{error} Training goes on (keep_going=true).")
        self._warned = True

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self.check()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.check()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.check()

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict) -> None:
        self.check()  # raised here, the checkpoint is not written
