"""Lightning's ``EarlyStopping``, its state key formatted once (src/callbacks/state_key.py),
and one line at the end of fit when it stopped the run (Lightning says nothing unless
``verbose``, which also logs every improvement)."""

from __future__ import annotations

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping

from src.callbacks.state_key import FixedStateKey
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class EarlyStopping(FixedStateKey, LightningEarlyStopping):
    """``lightning.pytorch.callbacks.EarlyStopping``, same arguments and checkpoint key."""

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        reason = self.stopping_reason_message
        if reason:  # set only when this callback stopped the run
            reason = reason.removesuffix(" Signaling Trainer to stop.")
            log.info(
                f"Early stopping ended the run at epoch {self.stopped_epoch} (patience "
                f"{self.patience}, mode {self.mode}): {reason}"
            )
