"""``ModelCheckpoint`` that keeps ``last.ckpt`` a true resume point.

Lightning's ``save_last`` rewrites ``last.ckpt`` only when a top-k checkpoint
was saved at the same step, i.e. when the monitored metric improved: after a
crash at epoch 11 the resume point may be epoch 5. ``RunCheckpoint`` also

- writes ``last.ckpt`` at the end of every epoch (every validation when
  validating several times an epoch), improved or not;
- writes it where training stopped when the run is interrupted (SIGTERM,
  Ctrl-C, an exception), so a resume continues from that step; not when the
  run diverged (the last finite weights are the ones worth resuming) and not
  when the disk is full (the previous good ``last.ckpt`` is kept); under DDP rank 0
  writes it alone, without the collectives that would hang when one rank failed.

Files are written atomically by ``src.utils.checkpoint_io.AtomicCheckpointIO``.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from src.callbacks.state_key import FixedStateKey
from src.utils.atomic import DiskFullError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class RunCheckpoint(FixedStateKey, ModelCheckpoint):
    """``ModelCheckpoint`` with ``last.ckpt`` every epoch and on interruption."""

    def _save_last_now(self, trainer: Any) -> None:
        if (
            not self.save_last
            or trainer.fast_dev_run
            or trainer.state.fn != TrainerFn.FITTING
            or trainer.sanity_checking
            or self._last_global_step_saved == trainer.global_step  # saved at this step
        ):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_alone(self, trainer: Any) -> None:
        """``last.ckpt`` from rank 0 without a collective: under DDP an exception may have
        struck one rank only, and Lightning's own saving would wait at a barrier for
        ranks that never come (the job would hang instead of failing)."""
        if not trainer.is_global_zero or not self.save_last or trainer.fast_dev_run:
            return
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        if self._last_global_step_saved == trainer.global_step:
            return
        path = self.format_checkpoint_name(
            self._monitor_candidates(trainer), self.CHECKPOINT_NAME_LAST
        )
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, path)
        self.last_model_path = path

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._every_n_train_steps < 1 and self._train_time_interval is None:
            return  # saving by epoch (the default): Lightning's per-batch checks decide nothing
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        from src.callbacks.divergence import DivergedError

        if isinstance(exception, DivergedError | DiskFullError):
            return  # keep the last good checkpoint
        if trainer.world_size > 1:
            self._save_last_alone(trainer)
        else:
            self._save_last_now(trainer)
        if self.last_model_path:
            log.info(
                f"{type(exception).__name__} at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step}: resume point saved to {self.last_model_path}"
            )
