"""A callback that signals its own process at a chosen epoch and batch, once (for the
kill-and-resume tests; added with ``+callbacks.signal_at._target_=...``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback


class SignalAt(Callback):
    """Send ``signal_name`` to this process before batch ``batch`` of epoch ``epoch`` (at
    the end of that epoch when ``batch`` is None), unless ``marker`` exists (it is created
    first, so a resumed run is not signalled again). ``during="val"``: before that batch
    of the epoch's validation instead (not of the sanity check)."""

    def __init__(
        self, epoch: int, batch: int | None, signal_name: str, marker: str, during: str = "train"
    ) -> None:
        self.epoch, self.batch, self.signal_name, self.marker = epoch, batch, signal_name, marker
        self.during = during

    def _send(self) -> None:
        if not Path(self.marker).exists():
            Path(self.marker).touch()
            os.kill(os.getpid(), getattr(signal, self.signal_name))

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        if self.during == "train" and trainer.current_epoch == self.epoch and idx == self.batch:
            self._send()

    def on_validation_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, idx: int, dataloader_idx: int = 0
    ) -> None:
        at = trainer.current_epoch == self.epoch and idx == self.batch
        if self.during == "val" and at and not trainer.sanity_checking:
            self._send()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.during == "train" and trainer.current_epoch == self.epoch and self.batch is None:
            self._send()  # Lightning stops after this epoch's checkpoint is written
