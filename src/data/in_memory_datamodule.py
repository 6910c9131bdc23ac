"""Shared machinery of data modules whose data set fits in memory as tensors.

A subclass says only how to load the whole labelled data set
(``load_samples``) and what the model needs to know about it (``spec``).
This class splits it (seeded, independent of the training seed, so the test
set never moves), normalises the inputs once with the training split's
statistics, and serves batches cut by index (see ``components.batches``).
A subclass with other needs replaces one step of ``setup``: how the splits
are made (``load_splits``) or how the data are normalised
(``fit_normalisation``, ``normalise``).

k-fold cross-validation (``num_folds``, ``fold``): the training pool, train
and val of the split above, is dealt into ``num_folds`` folds (seeded by
``split_seed``, stratified by class when ``fold_strata`` gives classes);
fold ``fold`` is the val split and the others train. The test split stays
as it is, so every fold is tested on the same samples, and the
normalisation is fitted to the fold's training part. ``split_record``
gives each split's indices into the data set, which ``train.py`` saves as
``<run>/splits.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning import LightningDataModule

from src.data.components.batches import TensorBatchLoader
from src.data.components.folds import fold_split
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
        num_folds: k-fold cross-validation: deal train and val together into this
            many folds; ``None`` keeps the fixed train/val split.
        fold: the fold (0..num_folds-1) held out as the val split.
    """

    def __init__(
        self,
        data_dir: str = "data/",
        train_val_test_split: Sequence[float] = (0, 0, 0),
        batch_size: int = 64,
        split_seed: int = 42,
        shuffle_seed: int | None = None,
        drop_last: bool = False,
        num_folds: int | None = None,
        fold: int | None = None,
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
        self.num_folds = num_folds
        self.fold = fold
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        # each split's sample indices into the data set, and what they index (load_splits)
        self.split_indices: dict[str, torch.Tensor] = {}
        self.indexed: str = ""

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
        (seeded by ``split_seed``) into the sizes of ``train_val_test_split``.

        Sets ``split_indices`` (each split's positions in what was loaded) and
        ``indexed`` (what those positions index, in words). A replacement that
        does not gets the samples of train, val and test numbered one after
        another."""
        x, y = self.load_samples()
        sizes = self.split_sizes(len(x))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed))
        self.split_indices = dict(zip(SPLITS, order.split(sizes), strict=True))
        self.indexed = f"the {len(x)} samples of {self.source}, in the order they are read"
        return {name: (x[index], y[index]) for name, index in self.split_indices.items()}

    def cross_validating(self) -> bool:
        """Whether k-fold cross-validation is asked for; stops on settings that cannot work."""
        k, fold = self.num_folds, self.fold
        if k is None:
            if fold is not None:
                raise UserInputError(
                    f"data.fold={fold} is set but data.num_folds is not: set both, for "
                    "example data.num_folds=5 data.fold=0, or data.fold=null for the fixed split."
                )
            return False
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise UserInputError(
                f"data.num_folds={k} cannot make k-fold cross-validation: it needs at least "
                "2 folds (5 or 10 are usual), or null for the fixed train/val split."
            )
        if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < k:
            raise UserInputError(
                f"data.fold={fold} must be one of the folds 0..{k - 1} of data.num_folds={k}: "
                f"it is the fold held out for validation. Run all: -m data.fold=range({k})."
            )
        return True

    def fold_strata(self, labels: torch.Tensor) -> torch.Tensor | None:
        """What the folds are stratified by: the labels when they are one class index per
        sample, ``None`` (plain shuffled folds) for any other labels."""
        if labels.ndim == 1 and not labels.is_floating_point():
            return labels
        return None

    def fold_positions(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions in a pool with these ``labels`` of this fold's training and val parts."""
        k = self.num_folds
        strata = self.fold_strata(labels)
        if len(labels) < k:
            raise UserInputError(
                f"data.num_folds={k} is more than the {len(labels)} samples of the training "
                f"pool (train + val) of {self.source}. Use fewer folds."
            )
        if strata is not None:
            classes, counts = torch.unique(strata, return_counts=True)
            if int(counts.min()) < k:
                rare = int(classes[counts.argmin()])
                raise UserInputError(
                    f"data.num_folds={k} cannot stratify the training pool of {self.source}: "
                    f"class {rare} has only {int(counts.min())} samples there, fewer than one "
                    f"per fold. Use data.num_folds={int(counts.min())} or fewer."
                )
        return fold_split(len(labels), k, self.fold, self.split_seed, strata)

    def fold_splits(
        self, parts: dict[str, tuple[torch.Tensor, ...]]
    ) -> dict[str, tuple[torch.Tensor, ...]]:
        """``parts`` (and ``split_indices``) with train and val replaced by this fold's
        training and val parts of their pool; test untouched. Each part is a tuple of
        tensors with the labels second."""
        index = torch.cat([self.split_indices["train"], self.split_indices["val"]])
        order = torch.argsort(index)  # the pool in data set order: folds depend on its samples only
        pool = [torch.cat(pair)[order] for pair in zip(parts["train"], parts["val"], strict=True)]
        train, val = self.fold_positions(pool[1])
        self.split_indices = {
            "train": index[order][train],
            "val": index[order][val],
            "test": self.split_indices["test"],
        }
        return {
            "train": tuple(t[train] for t in pool),
            "val": tuple(t[val] for t in pool),
            "test": parts["test"],
        }

    def number_in_turn(self, parts: dict[str, tuple[torch.Tensor, ...]]) -> None:
        """``split_indices`` that number the samples of train, val and test in turn."""
        sizes = [len(parts[name][0]) for name in SPLITS]
        self.split_indices = dict(zip(SPLITS, torch.arange(sum(sizes)).split(sizes), strict=True))
        self.indexed = (
            f"the samples of {self.source}'s train, val and test splits, one split after another"
        )

    def split_record(self) -> dict[str, Any]:
        """What reproduces the split: the settings and each split's sample indices."""
        if not self.splits:
            self.setup()
        return {
            "indices_into": self.indexed,
            "split_seed": self.split_seed,
            "num_folds": self.num_folds,
            "fold": self.fold,
            "sizes": {name: len(index) for name, index in self.split_indices.items()},
            **{name: index.tolist() for name, index in self.split_indices.items()},
        }

    def fit_normalisation(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fit the normalisation to the training split: one mean and std for all inputs."""
        self.input_mean, self.input_std = x.mean(), x.std().clamp_min(1e-8)

    def normalise(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ((x - self.input_mean) / self.input_std).contiguous(), y.contiguous()

    # -- Lightning hooks -------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        folds = self.cross_validating()  # before loading: a wrong setting stops at once
        self.split_indices = {}
        raw = {name: (x.float(), y) for name, (x, y) in self.load_splits().items()}
        if not self.split_indices:
            self.number_in_turn(raw)
        if folds:
            raw = self.fold_splits(raw)
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
