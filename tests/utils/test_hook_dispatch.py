"""Lightning's hook dispatch, cut where a hook does nothing: callbacks' empty per-batch
hooks are passed by, the hooks they implement still run at every batch."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import LambdaCallback
from torch.utils.data import DataLoader, TensorDataset

from src.utils.hook_dispatch import BATCH_HOOKS, skip_empty_batch_hooks


class Counting(L.Callback):
    """Implements two per-batch hooks; the rest are ``Callback``'s empty ones."""

    def __init__(self) -> None:
        self.batches = 0
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.losses.append(float(loss))


class CountingChild(Counting):
    """Inherits its hooks from a class of its own: they are not empty."""


class Line(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_empty_hooks_are_skipped_and_the_others_run(tmp_path) -> None:
    counting, child, empty = Counting(), CountingChild(), L.Callback()
    after_backward: list[int] = []
    on_instance = LambdaCallback(on_after_backward=lambda *_: after_backward.append(1))
    callbacks = [counting, child, empty, on_instance]
    skip_empty_batch_hooks(callbacks)

    assert all(getattr(empty, hook) is None for hook in BATCH_HOOKS)
    for callback in (counting, child):
        assert callable(callback.on_train_batch_end) and callable(callback.on_before_backward)
        assert callback.on_after_backward is None and callback.on_validation_batch_end is None
    assert callable(on_instance.on_after_backward)  # set on the instance: kept
    assert on_instance.on_train_batch_start is None  # LambdaCallback's own, empty ones

    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    loader = DataLoader(TensorDataset(x, 3 * x + 1), batch_size=8)
    trainer = L.Trainer(
        max_epochs=5, callbacks=callbacks, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(Line(), loader)  # Lightning's dispatcher passes the None hooks by

    assert counting.batches == child.batches == len(after_backward) == 5 * 8
    # what the hooks saw is the training: the loss fell
    assert counting.losses[-1] < 0.1 * counting.losses[0]
