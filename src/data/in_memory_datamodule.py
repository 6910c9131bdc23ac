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

The arguments every in-memory data module shares are declared here once; a
subclass's ``__init__`` names only its own arguments and the shared ones
whose default differs (``batch_size=32``, its ``train_val_test_split``), and
passes the rest on as ``**shared``.

``num_workers``, ``persistent_workers``: accepted so that LHT's overrides
and test settings work, and unused: the batches are cut from tensors already
in memory, and worker processes would only copy them. ``pin_memory`` goes to
the ``DataLoader`` (pinned batches copy to a GPU without blocking).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader

from src.data.components.batch_count import check_batch_count
from src.data.components.batches import TensorSamples, follow_fit_loop, tensor_loader
from src.data.components.folds import fold_split
from src.data.components.splits import SPLITS, Split, random_split, split_sizes
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

__all__ = ["SPLITS", "InMemoryDataModule"]

NORMALISE_CHUNK = 4096  # samples normalised at a time in setup: a few MB of extra memory

log = RankedLogger(__name__, rank_zero_only=True)


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
            run's seed (``seed_everything``) or 0. Under DDP Lightning's
            ``DistributedSampler`` shuffles instead, with the run's seed.
        drop_last: leave out an incomplete last training batch.
        num_folds: k-fold cross-validation: deal train and val together into this
            many folds; ``None`` keeps the fixed train/val split.
        fold: the fold (0..num_folds-1) held out as the val split.
        num_workers, persistent_workers: accepted (LHT's names) and unused, see
            the module docstring.
        pin_memory: pin each batch's memory (``DataLoader(pin_memory=...)``).
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
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
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
        self.num_workers = num_workers  # unused: see the module docstring
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers  # unused
        self.splits: dict[str, tuple[torch.Tensor, ...]] = {}
        # each split's sample indices into the data set, and what they index (setup)
        self.split_indices: dict[str, torch.Tensor] = {}
        self.indexed: str = ""

    # -- what a subclass provides -------------------------------------------------

    def load_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return all samples as the data set holds them (N x ..., bytes for images:
        ``from_raw`` makes the inputs of them after the split, so the data are never held
        as floats twice) and their labels (N x ...)."""
        raise NotImplementedError

    def from_raw(self, samples: torch.Tensor) -> torch.Tensor:
        """Inputs (before normalisation) of samples as the data set's files hold them;
        ``setup`` applies it to each split, ``predict.py`` (then ``normalise``) to new
        samples. Here: as floats."""
        return samples.float()

    @property
    def spec(self) -> dict[str, Any]:
        """Facts about the data that the model config's ``${data_spec:...}`` values take."""
        raise NotImplementedError

    @property
    def source(self) -> str:
        """What the data are, in error messages."""
        return type(self).__name__

    def class_names(self, head: str = "") -> list[str] | None:
        """What each class of ``head`` ("" for a single-label task) stands for, in the
        figures, the classification report and predictions
        (``src.data.components.class_labels``);
        None: the class indices say it (digits 0-9)."""
        return None

    # -- the steps of setup(), each replaceable ---------------------------------------

    def split_sizes(self, total: int) -> list[int]:
        """The train, val and test counts that ``train_val_test_split`` asks for."""
        return split_sizes(self.train_val_test_split, total, self.source)

    def load_splits(self) -> Split:
        """Unnormalised (inputs, labels) of each split, with their sample indices:
        ``load_samples`` cut at random (seeded by ``split_seed``) into the sizes of
        ``train_val_test_split``."""
        x, y = self.load_samples()
        indexed = f"the {len(x)} samples of {self.source}, in the order they are read"
        return random_split(x, y, self.split_sizes(len(x)), self.split_seed, indexed)

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

    def fold_splits(self, split: Split) -> Split:
        """``split`` with train and val replaced by this fold's training and val parts of
        their pool; test untouched."""
        parts, indices = split.parts, split.indices
        index = torch.cat([indices["train"], indices["val"]])
        order = torch.argsort(index)  # the pool in data set order: folds depend on its samples only
        pool = [torch.cat(pair)[order] for pair in zip(parts["train"], parts["val"], strict=True)]
        train, val = self.fold_positions(pool[1])
        return Split(
            {
                "train": tuple(t[train] for t in pool),
                "val": tuple(t[val] for t in pool),
                "test": parts["test"],
            },
            {"train": index[order][train], "val": index[order][val], "test": indices["test"]},
            split.indexed,
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

    def finish_split(self, split: Split) -> Split:
        """A last step on the loaded (and folded) split before normalisation: none here."""
        return split

    # -- Lightning hooks -------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        folds = self.cross_validating()  # before loading: a wrong setting stops at once
        split = self.load_splits()
        if folds:
            split = self.fold_splits(split)
        split = self.finish_split(split)
        self.split_indices, self.indexed = split.indices, split.indexed
        parts, splits = dict(split.parts), {}
        del split  # each raw split is let go once its inputs are made
        for name in SPLITS:  # train first: the normalisation is fitted to it
            raw, *rest = parts.pop(name)
            x = self.from_raw(raw)
            if name == "train":
                self.fit_normalisation(x, *rest)
            if x.untyped_storage().data_ptr() == raw.untyped_storage().data_ptr():
                splits[name] = self.normalise(x, *rest)  # the raw tensor: not ours to change
            else:
                splits[name] = self._normalise_over(x, *rest)
            del raw, x
        self.splits = splits

    def _normalise_over(self, x: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``normalise`` applied in chunks, each chunk's inputs written back over ``x`` (a
        tensor ``from_raw`` made for this split alone), so the inputs are not held twice:
        the in-memory path peaks near 1x its float data (``benchmarks/scaling.py``)."""
        others: list[list[torch.Tensor]] = [[] for _ in rest]
        for start in range(0, len(x), NORMALISE_CHUNK):
            chunk = slice(start, start + NORMALISE_CHUNK)
            inputs, *outputs = self.normalise(x[chunk], *(t[chunk] for t in rest))
            x[chunk] = inputs
            for kept, output in zip(others, outputs, strict=True):
                kept.append(output)
        return (x, *(torch.cat(kept) for kept in others))

    # LHT's attributes: each split as a Dataset (None before setup)
    @property
    def data_train(self) -> TensorSamples | None:
        return TensorSamples(*self.splits["train"]) if self.splits else None

    @property
    def data_val(self) -> TensorSamples | None:
        return TensorSamples(*self.splits["val"]) if self.splits else None

    @property
    def data_test(self) -> TensorSamples | None:
        return TensorSamples(*self.splits["test"]) if self.splits else None

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if not self.splits:
            self.setup()
        trainer = self.trainer
        if trainer is not None and trainer.overfit_batches:
            shuffle = False  # the same batches every epoch (Lightning cannot see our order)
        seed = self.shuffle_seed
        if seed is None:
            seed = int(torch.initial_seed()) % (2**31)
        loader = tensor_loader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=self.drop_last and shuffle,
            seed=seed,
            pin_memory=self.pin_memory,
        )
        size, drop_last = len(self.splits[split][0]), self.drop_last and shuffle
        check_batch_count(trainer, split, size, self.batch_size, drop_last, self.source)
        return follow_fit_loop(loader, trainer)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
