"""Shared machinery of data modules whose data set fits in memory as tensors.

A subclass says only how to load the whole labelled data set
(``load_samples``) and what the model needs to know about it (``spec``).
This class splits it (seeded, independent of the training seed, so the test
set never moves), normalises the inputs once with the training split's
statistics, and serves batches cut by index (see ``components.batches``).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning import LightningDataModule

from src.data.components.batches import TensorBatchLoader
from src.utils.errors import UserInputError


class InMemoryDataModule(LightningDataModule):
    """Base class: split, normalise once, serve index-cut batches.

    Args:
        data_dir: where the data set lives (or is written on first use).
        train_val_test_split: number of samples in train, val and test; they
            must add up to the size of the data set.
        batch_size: samples per batch (per process under DDP).
        split_seed: seed of the train/val/test split (kept apart from the
            training seed so that ``seed=`` never changes the test set).
        shuffle_seed: seed of the per-epoch shuffle order; ``None`` takes the
            run's seed (``seed_everything``) or 0.
        drop_last: leave out an incomplete last training batch.
    """

    def __init__(
        self,
        data_dir: str = "data/",
        train_val_test_split: tuple[int, int, int] = (0, 0, 0),
        batch_size: int = 64,
        split_seed: int = 42,
        shuffle_seed: int | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise UserInputError(f"data.batch_size must be at least 1, got {batch_size}.")
        self.data_dir = data_dir
        self.train_val_test_split = tuple(int(n) for n in train_val_test_split)
        self.batch_size = batch_size
        self.split_seed = split_seed
        self.shuffle_seed = shuffle_seed
        self.drop_last = drop_last
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- what a subclass provides -------------------------------------------------

    def load_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return all inputs (float, N x ...) and integer labels (N,)."""
        raise NotImplementedError

    @property
    def spec(self) -> dict[str, Any]:
        """Facts about the data that the model's ``???`` config values take."""
        raise NotImplementedError

    # -- Lightning hooks -------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        x, y = self.load_samples()
        x = x.float()
        sizes = self.train_val_test_split
        if sum(sizes) != len(x) or min(sizes) < 1:
            raise UserInputError(
                f"data.train_val_test_split={list(sizes)} does not fit {type(self).__name__}: "
                f"the data set has {len(x)} samples, so the three counts must be positive "
                f"and add up to {len(x)}."
            )
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed))
        parts = order.split(list(sizes))
        train_x = x[parts[0]]
        mean, std = train_x.mean(), train_x.std().clamp_min(1e-8)
        for name, index in zip(("train", "val", "test"), parts, strict=True):
            self.splits[name] = (((x[index] - mean) / std).contiguous(), y[index].contiguous())

    def _loader(self, split: str, shuffle: bool) -> TensorBatchLoader:
        if not self.splits:
            self.setup()
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world_size = trainer.world_size if trainer is not None else 1
        seed = self.shuffle_seed
        if seed is None:
            seed = int(torch.initial_seed()) % (2**31)
        return TensorBatchLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=self.drop_last and shuffle,
            seed=seed,
            rank=rank if shuffle else 0,
            world_size=world_size if shuffle else 1,
        )

    def train_dataloader(self) -> TensorBatchLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", shuffle=False)
