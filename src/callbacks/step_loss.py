"""The training loss of every step, logged as ``train/loss_step`` (off by default).

The modules keep ``train/loss`` as a running sum logged once an epoch: a
``self.log`` call per step costs about as much as a small model's whole step.
This callback is the switch for who wants the per-step curve
(``callbacks=[default,step_loss]``); ``trainer.log_every_n_steps`` sets how
often the loggers receive it. The epoch value keeps its name ``train/loss``, so
checkpoint monitors, sweeps and notebooks read the same metric either way.
"""

from __future__ import annotations

from typing import Any

from lightning import Callback, LightningModule, Trainer
from torch import Tensor


class StepLoss(Callback):
    """Logs the loss each training step returned as ``train/loss_step`` (per process)."""

    def __init__(self, name: str = "train/loss_step", prog_bar: bool = False) -> None:
        self.name = name
        self.prog_bar = prog_bar

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, Tensor):
            pl_module.log(
                self.name, loss.detach(), on_step=True, on_epoch=False, prog_bar=self.prog_bar
            )
