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
    first, so a resumed run is not signalled again)."""

    def __init__(self, epoch: int, batch: int | None, signal_name: str, marker: str) -> None:
        self.epoch, self.batch, self.signal_name, self.marker = epoch, batch, signal_name, marker

    def _send(self) -> None:
        if not Path(self.marker).exists():
            Path(self.marker).touch()
            os.kill(os.getpid(), getattr(signal, self.signal_name))

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        if trainer.current_epoch == self.epoch and idx == self.batch:
            self._send()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == self.epoch and self.batch is None:
            self._send()  # Lightning stops after this epoch's checkpoint is written
