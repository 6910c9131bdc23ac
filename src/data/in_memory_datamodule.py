"""Shared machinery of data modules whose data set fits in memory as tensors.

A subclass says only how to load the whole labelled data set
(``load_samples``) and what the model needs to know about it (``spec``).
This class splits it (seeded, independent of the training seed, so the test
set never moves), normalises the inputs once with the training split's
statistics, and serves batches cut by index (see ``components.batches``).
A subclass with other needs replaces one step of ``setup``: how the splits
are made (``load_splits``) or how the data are normalised
(``fit_normalisation``, ``normalise``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning import LightningDataModule

from src.data.components.batches import TensorBatchLoader
from src.utils.errors import UserInputError

SPLITS = ("train", "val", "test")


class InMemoryDataModule(LightningDataModule):
    """Base class: split, normalise once, serve index-cut batches.

    Args:
        data_dir: where the data set lives (or is written on first use).
        train_val_test_split: number of samples in train, val and test (they
            must add up to the size of the data set), or fractions of it
            that add up to 1.
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
        train_val_test_split: Sequence[float] = (0, 0, 0),
        batch_size: int = 64,
        split_seed: int = 42,
        shuffle_seed: int | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise UserInputError(f"data.batch_size must be at least 1, got {batch_size}.")
        self.data_dir = data_dir
        self.train_val_test_split = tuple(train_val_test_split)
        self.batch_size = batch_size
        self.split_seed = split_seed
        self.shuffle_seed = shuffle_seed
        self.drop_last = drop_last
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- what a subclass provides -------------------------------------------------

    def load_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return all inputs (float, N x ...) and their labels (N x ...)."""
        raise NotImplementedError

    @property
    def spec(self) -> dict[str, Any]:
        """Facts about the data that the model's ``???`` config values take."""
        raise NotImplementedError

    @property
    def source(self) -> str:
        """What the data are, in error messages."""
        return type(self).__name__

    # -- the steps of setup(), each replaceable ---------------------------------------

    def split_sizes(self, total: int) -> list[int]:
        """The train, val and test counts that ``train_val_test_split`` asks for."""
        split = self.train_val_test_split
        if len(split) != 3:
            raise UserInputError(
                f"data.train_val_test_split={list(split)} must have three entries: "
                "train, val and test."
            )
        if any(float(s) != int(s) for s in split):  # fractions
            if abs(sum(split) - 1) > 1e-6 or min(split) <= 0:
                raise UserInputError(
                    f"data.train_val_test_split={list(split)}: fractions must be positive "
                    "and add up to 1 (or give three counts)."
                )
            val, test = round(total * split[1]), round(total * split[2])
            sizes = [total - val - test, val, test]
            if min(sizes) < 1:
                raise UserInputError(
                    f"data.train_val_test_split={list(split)} does not fit {self.source}: its "
                    f"{total} samples make splits of {sizes}, and every split needs at least "
                    "one. Use more data or larger fractions."
                )
            return sizes
        sizes = [int(s) for s in split]
        if sum(sizes) != total or min(sizes) < 1:
            raise UserInputError(
                f"data.train_val_test_split={sizes} does not fit {self.source}: "
                f"the data set has {total} samples, so the three counts must be positive "
                f"and add up to {total}."
            )
        return sizes

    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Unnormalised (inputs, labels) of each split: ``load_samples`` cut at random
        (seeded by ``split_seed``) into the sizes of ``train_val_test_split``."""
        x, y = self.load_samples()
        sizes = self.split_sizes(len(x))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed))
        parts = order.split(sizes)
        return {name: (x[index], y[index]) for name, index in zip(SPLITS, parts, strict=True)}

    def fit_normalisation(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fit the normalisation to the training split: one mean and std for all inputs."""
        self.input_mean, self.input_std = x.mean(), x.std().clamp_min(1e-8)

    def normalise(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ((x - self.input_mean) / self.input_std).contiguous(), y.contiguous()

    # -- Lightning hooks -------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = {name: (x.float(), y) for name, (x, y) in self.load_splits().items()}
        self.fit_normalisation(*raw["train"])
        self.splits = {name: self.normalise(x, y) for name, (x, y) in raw.items()}

    def _loader(self, split: str, shuffle: bool) -> TensorBatchLoader:
        if not self.splits:
            self.setup()
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world_size = trainer.world_size if trainer is not None else 1
        seed = self.shuffle_seed
        if seed is None:
            seed = int(torch.initial_seed()) % (2**31)
        loader = TensorBatchLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=self.drop_last and shuffle,
            seed=seed,
            rank=rank if shuffle else 0,
            world_size=world_size if shuffle else 1,
        )
        if len(loader) == 0:
            raise UserInputError(
                f"The {split} split of {self.source} has {len(self.splits[split][0])} samples, "
                f"fewer than data.batch_size={self.batch_size} per process, and incomplete "
                "batches are dropped (drop_last, switched on for nets with BatchNorm). "
                "Lower data.batch_size or give the split more samples."
            )
        return loader

    def train_dataloader(self) -> TensorBatchLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", shuffle=False)
