"""Lightning's weight averages (EMA, SWA), tested on the average.

A checkpoint written with ``EMAWeightAveraging`` holds the average in ``state_dict`` and
the raw weights in ``current_model_state``. Lightning's callback keeps its average model
after ``fit``, so when ``train.py`` then tests the best checkpoint it loads
``current_model_state`` into the module, as for a resume: ``test/*`` measured weights that
validation never saw (the checkpoint was chosen by the average's ``val/acc``), and
``eval.py run_dir=...``, a new trainer, tested the average and disagreed.

Lightning's ``StochasticWeightAveraging`` puts its average into the module only when
training ends, after the last checkpoint was written, and ``train.py`` tests the best
checkpoint: the average was never tested nor saved (test metrics equal to a run without
SWA). Here the averaged module is saved as ``checkpoints/swa.ckpt``, the checkpoint
``train.py`` tests and ``eval.py run_dir=`` picks (``src.utils.checkpoints``).

For a model with BatchNorm, Lightning's SWA adds an epoch after the last one that only
recomputes the BatchNorm statistics of the average: the checkpoint's fit loop counts
``max_epochs + 1`` epochs. The callback records that epoch in its checkpoint state
(``UNTRAINED_EPOCHS``), so a resume check counts the epochs that trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging as LightningEMA
from lightning.pytorch.callbacks import StochasticWeightAveraging as LightningSWA
from lightning.pytorch.trainer.states import TrainerFn

from src.utils.checkpoints import AVERAGE_CHECKPOINT, UNTRAINED_EPOCHS
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class EMAWeightAveraging(LightningEMA):
    """``lightning.pytorch.callbacks.EMAWeightAveraging`` (same arguments) that restores its
    raw weights and average from a checkpoint only to resume fitting; a test, validation
    or prediction keeps the checkpoint's ``state_dict``, the average."""

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class StochasticWeightAveraging(LightningSWA):
    """``lightning.pytorch.callbacks.StochasticWeightAveraging`` (same arguments) that saves
    the averaged module as ``<checkpoints>/swa.ckpt`` when training ends with the average
    complete (every epoch up to the last averaged), and records its BatchNorm pass in its
    checkpoint state as an epoch that trained nothing (``UNTRAINED_EPOCHS``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._untrained_epochs: list[int] = []

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        # Lightning's condition for the epoch that only updates BatchNorm statistics
        batch_norm_pass = (
            self._model_contains_batch_norm
            and self._max_epochs != -1
            and trainer.current_epoch == self.swa_end + 1
        )
        if batch_norm_pass and trainer.current_epoch not in self._untrained_epochs:
            self._untrained_epochs.append(trainer.current_epoch)
            # Lightning then reports max_epochs+1 reached: said here, it is no surprise
            log.info(
                f"SWA: one more epoch (index {trainer.current_epoch}, past max_epochs="
                f"{self._max_epochs}) recomputes the average's BatchNorm statistics; it "
                "trains nothing."
            )

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), UNTRAINED_EPOCHS: list(self._untrained_epochs)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._untrained_epochs = [int(e) for e in state_dict.get(UNTRAINED_EPOCHS, [])]

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)  # the average into the module
        if self._latest_update_epoch != self.swa_end:
            log.warning(
                f"SWA: training stopped at epoch {trainer.current_epoch - 1} before the average "
                f"over epochs {self.swa_start}-{self.swa_end} was complete (early stopping?): "
                "no swa.ckpt, the best checkpoint is tested as without SWA."
            )
            return
        checkpoints = trainer.checkpoint_callback
        folder = Path(checkpoints.dirpath) if checkpoints else Path(trainer.default_root_dir)
        # a full checkpoint like the others (eval.py and a resume read it the same way);
        # said explicitly, Lightning logs that weights_only defaulted to False
        trainer.save_checkpoint(folder / AVERAGE_CHECKPOINT, weights_only=False)
        log.info(f"SWA: the average of epochs {self.swa_start}-{self.swa_end} saved to "
                 f"{folder / AVERAGE_CHECKPOINT}")  # fmt: skip
