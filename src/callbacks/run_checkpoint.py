"""``ModelCheckpoint`` that keeps ``last.ckpt`` a true resume point.

Lightning's ``save_last`` rewrites ``last.ckpt`` only when a top-k checkpoint
was saved at the same step, i.e. when the monitored metric improved: after a
crash at epoch 11 the resume point may be epoch 5. ``RunCheckpoint`` also

- writes ``last.ckpt`` at the end of every epoch (every validation when
  validating several times an epoch), improved or not;
- writes it where training stopped when the run is interrupted (SIGTERM,
  Ctrl-C, an exception), so a resume continues from that step (stopped during the
  fit's validation, the checkpoint says the validation has not begun: the resumed
  run validates that epoch's weights from the first batch, because the metrics of
  the batches already validated are not in the checkpoint); not when the
  run diverged (the last finite weights are the ones worth resuming) and not
  when the disk is full (the previous good ``last.ckpt`` is kept); under DDP rank 0
  writes it alone, without the collectives that would hang when one rank failed.

Files are written atomically by ``src.utils.checkpoint_io.AtomicCheckpointIO``.
Where ``last.ckpt`` follows a best checkpoint written at the same step, with the
same contents (the checkpoint callback's own state names ``last.ckpt`` already:
every time but the first), it becomes a hard link to that file instead of being
serialised and written again: one write a checkpoint instead of two (a ResNet-18
with Adam: 140 MB). In one process, on a local filesystem that has hard links;
anywhere else it is written as before.

A run resumed into a new directory (``ckpt_path=<run>/checkpoints/last.ckpt`` without
``hydra.run.dir``, the README's resume) carries its best checkpoints over: they are
linked (copied where links are not possible) into the new ``checkpoints/`` and the
callback's state follows them. Lightning restores only ``best_model_path`` when the
directory changed (deleting top-k files of another run would be worse), so the new run
compared its epochs with none of the earlier ones: it tested its own best epoch, worse
than the one its restored ``val/acc_best`` reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from weakref import proxy

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import RunningStage, TrainerFn

from src.callbacks.state_key import FixedStateKey
from src.utils.atomic import DiskFullError, link_file, write_bytes
from src.utils.checkpoint_io import AtomicCheckpointIO
from src.utils.logging_utils import RankedLogger, current_rank

log = RankedLogger(__name__)


class RunCheckpoint(FixedStateKey, ModelCheckpoint):
    """``ModelCheckpoint`` with ``last.ckpt`` every epoch and on interruption."""

    # (path written, the last_model_path its own state holds, global step) of the last save
    _written: tuple[str, str, int] | None = None
    _validation_interrupted = False  # set while on_exception saves from inside validation

    def _same_checkpoint_written(self, trainer: Any, filepath: str) -> str | None:
        """The file just written at this step whose contents a save to ``filepath`` would
        repeat: Lightning saves ``last.ckpt`` right after the best checkpoint, and between
        the two dumps only the callback's ``last_model_path`` may change (it is set before
        saving last); from the second save of a run on it is ``filepath`` in both."""
        if self._written is None or trainer.world_size != 1 or "://" in str(filepath):
            return None
        if not isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):
            return None  # another plug-in may write later, elsewhere, or not a plain file
        source, holds_last, step = self._written
        if step != trainer.global_step or source != self._last_checkpoint_saved:
            return None
        return source if holds_last == str(filepath) != source else None

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        source = self._same_checkpoint_written(trainer, filepath)
        if source is not None:
            try:
                link_file(source, filepath)
            except OSError:
                pass  # a filesystem without hard links: written in full below
            else:
                # what ModelCheckpoint._save_checkpoint records and tells the loggers
                self._last_global_step_saved = trainer.global_step
                self._last_checkpoint_saved = filepath
                for logger in trainer.loggers:
                    logger.after_save_checkpoint(proxy(self))
                return
        holds_last = self.last_model_path
        super()._save_checkpoint(trainer, filepath)
        self._written = (str(filepath), str(holds_last), trainer.global_step)

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
        self._validation_interrupted = trainer.state.stage == RunningStage.VALIDATING
        try:
            if trainer.world_size > 1:
                self._save_last_alone(trainer)
            else:
                self._save_last_now(trainer)
        finally:
            self._validation_interrupted = False
        if self.last_model_path:
            log.info(
                f"{type(exception).__name__} at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step}: resume point saved to {self.last_model_path}"
            )

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._fitting = stage == "fit"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_dir = state_dict.get("dirpath")
        moved = self.dirpath and saved_dir and str(saved_dir) != str(self.dirpath)
        if moved and not getattr(self, "_fitting", True):
            # trainer.test restores callbacks from its ckpt_path too: testing another run's
            # checkpoint (train=false) trains no epochs to compare with its best, and keeps
            # this run's own record (it linked that run's best into this checkpoints/)
            return
        if moved:
            state_dict = self._carried_over(state_dict)
        super().load_state_dict(state_dict)

    def _carried_over(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` of a run in another directory, its top-k checkpoints brought into this
        one (rank 0 links them; every rank takes the new paths). Unchanged, so Lightning
        keeps only the best path, when one of them is gone."""
        best_k = {str(path): score for path, score in state.get("best_k_models", {}).items()}
        if not best_k or not all(Path(path).is_file() for path in best_k):
            return state
        here = Path(self.dirpath)
        moved = {path: here / Path(path).name for path in best_k}
        if current_rank() == 0:
            here.mkdir(parents=True, exist_ok=True)
            for source, target in moved.items():
                try:
                    link_file(source, target)
                except OSError:  # another filesystem, or none with hard links
                    write_bytes(target, Path(source).read_bytes())
            names = ", ".join(sorted(target.name for target in moved.values()))
            log.info(
                f"Resumed from a run in {state['dirpath']}: its best checkpoints ({names}) "
                f"are in {here} too, so this run's epochs are compared with them."
            )
        best, kth = state.get("best_model_path", ""), state.get("kth_best_model_path", "")
        return {
            **state,
            "dirpath": self.dirpath,
            "best_k_models": {str(moved[path]): score for path, score in best_k.items()},
            "best_model_path": str(moved.get(best, best)),
            "kth_best_model_path": str(moved.get(kth, kth)),
            "last_model_path": "",  # this run writes its own
        }

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict) -> None:
        """A resume point written from inside the fit's validation: the validation loop's
        counters as Lightning's loops read "stopped before the first validation batch"
        (Lightning's mid-evaluation restart, which then runs the whole validation; left as
        they are, its loops take the finished training batches for a checkpoint saved
        after validation, skip it, and early stopping finds no val/ metric)."""
        if not self._validation_interrupted:
            return
        progress = checkpoint["loops"]["fit_loop"]["epoch_loop.val_loop.batch_progress"]
        progress["total"].update(ready=1, started=1, processed=0, completed=0)
        progress["current"].update(ready=0, started=0, processed=0, completed=0)
        progress["is_last_batch"] = False
