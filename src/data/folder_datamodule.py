"""Shared machinery of data modules that read files lazily: ``<root>/raw/<class>/<file>``.

The file-backed path (DESIGN.md: "two data paths"): the data set is a list of
relative paths, the split files of ``components.folder_splits`` say which go
where, and each sample is read, decoded and transformed in ``DataLoader``
worker processes. Memory holds the path lists and the batches in flight, so a
data set larger than memory trains with memory bounded by construction.

A subclass says how one file becomes a sample (``make_dataset``), what it
checks and fits on the split before training (``prepare``, e.g. mean/std), and
what the model needs to know (``spec``).

k-fold (``num_folds``, ``fold``) reads ``fold_<k>_train.txt`` / ``fold_<k>_val.txt``
and the shared ``test.txt``. ``split_record`` (``<run>/splits.json``) lists
each split's files as relative paths under ``<root>/raw``: with files, a path
says more than an index and survives files added to the folder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from src.data.components.batch_count import check_batch_count
from src.data.components.file_samples import CheckedCollate, LoaderProblem, init_worker
from src.data.components.folder_splits import (
    IMAGE_EXTENSIONS,
    check_classes_seen,
    read_settings,
    read_split_file,
    split_names,
)
from src.utils.cpu import usable_cores
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__, rank_zero_only=True)

SPLITS = ("train", "val", "test")


class CheckedLoader(DataLoader):
    """A ``DataLoader`` that turns a problem found in a worker (an unreadable file) into
    one ``UserInputError`` in the main process, instead of a worker traceback."""

    def __iter__(self) -> Iterator[Any]:
        for batch in super().__iter__():
            if isinstance(batch, LoaderProblem):
                raise UserInputError(batch.message)
            yield batch


def default_workers() -> int:
    """Loader workers when ``num_workers`` is null: the cores but one (the training
    process's), at most 8, so that decoding runs beside the training step."""
    return max(0, min(8, usable_cores() - 1))


def check_folds(num_folds: int | None, fold: int | None) -> bool:
    """Whether k-fold is asked for; stops on settings that cannot work."""
    if num_folds is None:
        if fold is not None:
            raise UserInputError(
                f"data.fold={fold} is set but data.num_folds is not: set both, for example "
                "data.num_folds=5 data.fold=0, or data.fold=null for the fixed split."
            )
        return False
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or num_folds < 2:
        raise UserInputError(f"data.num_folds={num_folds} must be 2 or more (or null).")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < num_folds:
        raise UserInputError(
            f"data.fold={fold} must be one of the folds 0..{num_folds - 1} of "
            f"data.num_folds={num_folds}. Run all: -m data.fold=range({num_folds})."
        )
    return True


class FolderDataModule(LightningDataModule):
    """Base class: read the split files, check them, serve worker-decoded batches.

    Args:
        root: the data folder (``<root>/raw/<class>/<file>``, ``<root>/splits/``); ``None``:
            the example folder of ``example``.
        example: the example folder used when ``root`` is ``None`` (``dir`` and the
            example's settings, ``components.example_folders``): written on first use at
            a path derived from the settings, found there after. Ignored when ``root`` is
            given (the user's folder is never written to).
        batch_size: samples per batch (per process under DDP).
        shuffle_seed: seed of the per-epoch order; ``None`` takes the run's seed.
        drop_last: leave out an incomplete last training batch.
        num_folds, fold: k-fold cross-validation from ``fold_<k>_*.txt``.
        num_workers: loader worker processes; ``None``: the cores but one (at most 8).
            More than the cores is warned about and lowered to the cores.
        pin_memory: pinned batches (fast copies to a GPU); ``None``: when CUDA is there.
        persistent_workers: keep the workers between epochs (when there are any).
        skip_corrupt: skip unreadable files (counted in the log) instead of stopping.
    """

    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    example_kind = "image"  # what data.example writes (components.example_folders)

    def __init__(
        self,
        root: str | None,
        batch_size: int = 64,
        shuffle_seed: int | None = None,
        drop_last: bool = False,
        num_folds: int | None = None,
        fold: int | None = None,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        skip_corrupt: bool = False,
        example: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise UserInputError(f"data.batch_size must be at least 1, got {batch_size}.")
        self.example = example
        self.root = self._root(root, example)
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.drop_last = drop_last
        self.num_folds, self.fold = num_folds, fold
        self.num_workers = self._workers(num_workers)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and self.num_workers > 0
        self.skip_corrupt = skip_corrupt
        self.classes = self._class_names()
        self.files: dict[str, list[str]] = {}
        self.datasets: dict[str, Dataset] = {}

    @staticmethod
    def _workers(num_workers: int | None) -> int:
        if num_workers is None:
            return default_workers()
        if num_workers < 0:
            raise UserInputError(f"data.num_workers={num_workers} must be 0 or more (or null).")
        cores = usable_cores()
        if num_workers > cores:
            log.warning(
                f"data.num_workers={num_workers} is more than the {cores} cores this process "
                f"may use: more workers only compete for them. Using {cores}."
            )
            return cores
        return num_workers

    def _root(self, root: str | None, example: Mapping[str, Any] | None) -> Path:
        if root is not None:
            return Path(root)
        if example is None:
            raise UserInputError(
                "data.root is not set: give the data folder, data.root=<root> holding "
                "<root>/raw/<class>/<file> (or data.example=... for an example folder)."
            )
        from src.data.components.example_folders import example_folder

        found = example_folder(self.example_kind, example)
        log.info(f"data.root not given: the example folder {found} (data.example)")
        return found

    def _class_names(self) -> list[str]:
        raw = self.root / "raw"
        if not raw.is_dir():
            hint = " (or data.root=null: the example folder)" if self.example else ""
            raise UserInputError(
                f"{raw} does not exist: data.root must hold <root>/raw/<class>/<file> "
                f"(one sub-folder per class){hint}."
            )
        return sorted(p.name for p in raw.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- what a subclass provides -------------------------------------------------

    def prepare(self, files: dict[str, list[str]]) -> dict[str, list[str]]:
        """Check (and fit anything to) the split before training; may drop files."""
        return files

    def make_dataset(self, split: str, files: list[str]) -> Dataset:
        raise NotImplementedError

    @property
    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def class_names(self, head: str = "") -> list[str] | None:
        """The class folders' names (``InMemoryDataModule.class_names``)."""
        return list(self.classes)

    # -- splits ---------------------------------------------------------------------

    def split_fix(self) -> str:
        folds = f" FOLDS={self.num_folds}" if self.num_folds else ""
        return f"Make the split files with: make split ROOT={self.root}{folds}"

    def read_splits(self) -> dict[str, list[str]]:
        folds = check_folds(self.num_folds, self.fold)
        settings = read_settings(self.root / "splits") or {}
        if folds and settings and settings.get("folds") != self.num_folds:
            raise UserInputError(
                f"data.num_folds={self.num_folds}, but {self.root / 'splits'} was made with "
                f"folds={settings.get('folds')}. Use data.num_folds={settings.get('folds')}, or "
                "move the splits folder away and run: " + self.split_fix().split(": ", 1)[1]
            )
        names = split_names(self.num_folds, self.fold)
        files = {
            split: read_split_file(self.root, name, self.classes, self.split_fix())
            for split, name in zip(SPLITS, names, strict=True)
        }
        check_classes_seen(files, self.root / "splits")
        return files

    def split_record(self) -> dict[str, Any]:
        """What reproduces the split: the settings and each split's files (relative paths)."""
        if not self.files:
            self.setup()
        settings = read_settings(self.root / "splits") or {}
        return {
            "indices_into": f"files under {self.root / 'raw'}, as relative paths <class>/<file>",
            "root": str(self.root),
            "split_files": list(split_names(self.num_folds, self.fold)),
            "split_seed": settings.get("seed"),
            "num_folds": self.num_folds,
            "fold": self.fold,
            "sizes": {name: len(files) for name, files in self.files.items()},
            **self.files,
        }

    def label_of(self, relative: str) -> int:
        return self.classes.index(relative.split("/", 1)[0])

    # -- Lightning hooks ----------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.files = self.prepare(self.read_splits())
        self.datasets = {name: self.make_dataset(name, f) for name, f in self.files.items()}

    @property
    def data_train(self) -> Dataset | None:
        return self.datasets.get("train")

    @property
    def data_val(self) -> Dataset | None:
        return self.datasets.get("val")

    @property
    def data_test(self) -> Dataset | None:
        return self.datasets.get("test")

    def shard_dataset(self, split: str) -> Dataset:
        """What ``src/tools/to_shards.py`` writes for ``split``: its files decoded as for
        evaluation (a random augmentation written once would repeat every epoch)."""
        self.setup()
        return self.make_dataset("test", self.files[split])

    def loader(self, split: str, shuffle: bool, workers: int | None = None) -> DataLoader:
        if not self.datasets:
            self.setup()
        dataset = self.datasets[split]
        trainer = self.trainer
        if trainer is not None and trainer.overfit_batches:
            shuffle = False
        drop_last = self.drop_last and shuffle
        check_batch_count(trainer, split, len(dataset), self.batch_size, drop_last, str(self.root),
                          "files")  # fmt: skip
        generator = None
        if shuffle:
            seed = self.shuffle_seed
            seed = int(torch.initial_seed()) % (2**31) if seed is None else seed
            generator = torch.Generator().manual_seed(seed)
        workers = self.num_workers if workers is None else workers
        return CheckedLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            collate_fn=CheckedCollate(self.skip_corrupt),
            generator=generator,
            worker_init_fn=init_worker,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)
