"""Training throughput in samples per second."""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer


def batch_size_of(batch: Any) -> int:
    """The length of the first tensor found in a batch (tuple, list or dict of tensors)."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    items = batch.values() if isinstance(batch, dict) else batch
    for item in items:
        return batch_size_of(item)
    raise ValueError("the batch holds no tensor")


class Throughput(Callback):
    """Logs ``train/samples_per_s``, the epoch's training samples over its wall time
    (validation excluded), per process."""

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.samples = 0
        self.seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self.started
        self.samples += batch_size_of(batch)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.seconds > 0:
            pl_module.log("train/samples_per_s", self.samples / self.seconds)
