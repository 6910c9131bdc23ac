"""A callback that raises on one DDP rank only, for the tests of a failing rank in a
multirun (added with ``+callbacks.rank_fault._target_=...``; ``rank=-1`` never raises)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import Callback

MESSAGE = "injected fault on rank"


class RaiseOnRank(Callback):
    """Raise a RuntimeError before training batch ``batch`` of the first epoch on rank
    ``rank`` (its global rank), and nowhere else."""

    def __init__(self, rank: int, batch: int = 1) -> None:
        self.rank, self.batch = rank, batch

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        if trainer.global_rank == self.rank and trainer.current_epoch == 0 and idx == self.batch:
            raise RuntimeError(f"{MESSAGE} {self.rank}")
