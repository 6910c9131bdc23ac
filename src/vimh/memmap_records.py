"""VIMH record files read in place (``data.in_memory=false``): batches larger than memory.

Records have a fixed size (``format.record_dtype``), so record ``i`` of a file is
at byte ``i * itemsize`` and a batch is a numpy memmap of the file indexed by its
rows. The labels and levels of every record (a few bytes each) are read once and
kept; the pixels are read batch by batch, in the loader's workers when
``data.num_workers > 0``.

The memmap is opened for each batch and dropped after it: the pages a mapping
has touched count in the process's resident memory for as long as it is open,
so one mapping kept for the epoch would grow to the file's size. Unmapped pages
stay in the page cache (which the kernel frees as it needs), not in the process.

The checks of ``format.read_records`` run here chunk by chunk (same messages),
so that opening a file larger than memory never reads it whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from src.data.components.batches import (
    EpochOrder,
    IndexBatchSampler,
    ResumableLoader,
    follow_fit_loop,
    keep_batch,
)
from src.utils.errors import UserInputError
from src.vimh.format import HEADER_BYTES, INFO_FILE, record_dtype

CHUNK_BYTES = 64 * 2**20  # records checked (and normalisation fitted) per chunk of this size


class RecordFile:
    """One record file, its headers checked, with every record's labels and levels."""

    def __init__(self, path: str | Path, num_params: int) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserInputError(
                f"{self.path} is missing: a VIMH data set needs its train and test files."
            )
        size = self.path.stat().st_size
        head = np.fromfile(self.path, dtype=np.uint8, count=HEADER_BYTES)
        if size < HEADER_BYTES:
            raise UserInputError(f"{self.path}: record 0 is truncated ({size} bytes).")
        self.height, self.width, self.channels = (int(v) for v in head[:6].view("<u2"))
        pixels = self.height * self.width * self.channels
        if not 0 < pixels <= size - HEADER_BYTES:
            raise UserInputError(
                f"{self.path}: record 0's header says {self.height}x{self.width}x"
                f"{self.channels} pixels, which do not fit in the file ({size:,} bytes): it is "
                "not a VIMH record file, or it is corrupt. Generate the data set again."
            )
        self.dtype = record_dtype(int(head[14]), pixels)
        self.count, rest = divmod(size, self.dtype.itemsize)
        if rest:
            raise UserInputError(
                f"{self.path}: record {self.count} is truncated (the file ends {rest} bytes into "
                f"it; records are {self.dtype.itemsize} bytes). Generate the data set again."
            )
        if int(head[14]) != num_params:
            raise UserInputError(
                f"{self.path}: record 0 has {int(head[14])} labels but {INFO_FILE} names "
                f"{num_params} parameters: the JSON and the binary disagree."
            )
        labels, levels = zip(*(self.check(s) for s in self.chunks()), strict=True)
        self.labels, self.levels = np.concatenate(labels), np.concatenate(levels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width

    def rows(self) -> np.memmap:
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.count,))

    def chunks(self) -> list[slice]:
        step = max(1, CHUNK_BYTES // self.dtype.itemsize)
        return [slice(s, min(s + step, self.count)) for s in range(0, self.count, step)]

    def check(self, part: slice) -> tuple[np.ndarray, np.ndarray]:
        """Headers of the records in ``part`` against record 0's; their labels (in
        param_id order) and levels."""
        rows = self.rows()[part]
        num = self.dtype["labels"].shape[0]
        same = ((rows["height"] == self.height) & (rows["width"] == self.width)
                & (rows["channels"] == self.channels) & (rows["num_labels"] == num))  # fmt: skip
        levels = np.stack([rows["spec_min_db"], rows["spec_max_db"]], axis=1).astype(np.float32)
        ids = rows["labels"][:, :, 0]
        checks = (
            (same, "has an inconsistent header (not record 0's size). The file is corrupt."),
            (np.isfinite(levels).all(axis=1) & (levels[:, 0] <= levels[:, 1]),
             "has an inconsistent header (spec_min_db, spec_max_db). The file is corrupt."),
            ((np.sort(ids, axis=1) == np.arange(num)).all(axis=1),
             f"does not label each param_id 0..{num - 1} once."),
        )  # fmt: skip
        for ok, what in checks:
            if not ok.all():
                raise UserInputError(
                    f"{self.path}: record {part.start + int(np.argmin(ok))} {what}"
                )
        order = np.argsort(ids, axis=1, kind="stable")
        return np.take_along_axis(rows["labels"][:, :, 1], order, axis=1), levels

    def images(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) pixels of the records ``rows``, read through a fresh memmap."""
        mapped = self.rows()
        pixels = np.asarray(mapped["pixels"][rows])
        del mapped  # unmapped: its pages leave this process's resident memory
        return pixels.reshape(len(rows), *self.shape)

    def pixel_moments(self, rows: np.ndarray) -> tuple[float, float]:
        """Mean and (unbiased) std of the pixel bytes of ``rows``: exact integer sums over
        8 MiB chunks (a float copy of a larger chunk would cost more than the batches)."""
        total = squares = 0
        rows = np.sort(rows)
        step = max(1, 8 * 2**20 // self.dtype.itemsize)
        for start in range(0, len(rows), step):
            part = self.images(rows[start : start + step])
            total += int(part.sum(dtype=np.int64))
            squares += int(np.square(part, dtype=np.int32).sum(dtype=np.int64))
        n = len(rows) * int(np.prod(self.shape))
        mean = total / n
        return mean, float(np.sqrt(max(squares - total * mean, 0.0) / max(n - 1, 1)))


class MemmapSamples(Dataset):
    """The records ``rows`` of a ``RecordFile`` as VIMH samples ``(x, y, levels)``,
    normalised as the in-memory path normalises them; ``__getitems__`` reads a batch."""

    def __init__(
        self, file: RecordFile, rows: np.ndarray, x_stats: tuple[float, float],
        level_stats: tuple[torch.Tensor, torch.Tensor],
    ) -> None:  # fmt: skip
        self.file, self.rows = file, np.asarray(rows, dtype=np.int64)
        self.x_mean, self.x_std = x_stats
        self.level_mean, self.level_std = level_stats

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[0] for t in self.__getitems__([index]))

    def __getitems__(
        self, indices: slice | torch.Tensor | Sequence[int]
    ) -> tuple[torch.Tensor, ...]:
        rows = self.rows[indices] if isinstance(indices, slice) else self.rows[np.asarray(indices)]
        x = torch.from_numpy(self.file.images(rows)).float()
        x = (x - self.x_mean) / self.x_std
        y = torch.from_numpy(self.file.labels[rows]).long()
        levels = (torch.from_numpy(self.file.levels[rows]) - self.level_mean) / self.level_std
        return x, y, levels.contiguous()


def memmap_datasets(dm) -> tuple[dict[str, MemmapSamples], dict[str, torch.Tensor], str]:
    """The train/val/test splits of a ``VIMHDataModule`` with ``in_memory=False``: the same
    rows (seeded cut or fold of the train file, the test file) and normalisation as its
    in-memory path, as ``MemmapSamples``; with each split's indices and what they index."""
    from src.vimh.datamodule import MIN_LEVEL_STD

    folds = dm.cross_validating()  # before reading: a wrong setting stops at once
    info = dm.dataset_info()
    files = {
        s: RecordFile(Path(dm.data_dir) / s, len(info["parameter_names"]))
        for s in ("train", "test")
    }
    for split, file in files.items():
        expected = (info["channels"], info["height"], info["width"])
        if file.shape != expected or file.count != info[f"{split}_samples"]:
            raise UserInputError(
                f"{file.path} holds {file.count} records of {file.shape} (CxHxW) but "
                f"{Path(dm.data_dir) / INFO_FILE} says {info[f'{split}_samples']} of {expected}: "
                "the JSON and the binary disagree."
            )
    size, tested = files["train"].count, files["test"].count
    if folds:
        kept, val = dm.fold_positions(torch.from_numpy(files["train"].labels).long())
    else:
        kept, val = dm.split_train(size)
    mean, std = files["train"].pixel_moments(kept.numpy())
    levels = torch.from_numpy(files["train"].levels[kept.numpy()])
    level_stats = levels.mean(0), levels.std(0).clamp_min(MIN_LEVEL_STD)
    x_stats = (mean, max(std, 1e-8))
    rows = {"train": (files["train"], kept), "val": (files["train"], val),
            "test": (files["test"], torch.arange(tested))}  # fmt: skip
    datasets = {
        name: MemmapSamples(f, r.numpy(), x_stats, level_stats) for name, (f, r) in rows.items()
    }
    indices = {"train": kept, "val": val, "test": torch.arange(size, size + tested)}
    indexed = (f"the {size} samples of {dm.data_dir}/train, then the {tested} of "
               f"{dm.data_dir}/test, in file order")  # fmt: skip
    return datasets, indices, indexed


def memmap_loader(dm, split: str, shuffle: bool) -> DataLoader:
    """A ``DataLoader`` of a memmap split with the batches of the in-memory path (the same
    ``EpochOrder`` and index batches), read in ``dm.num_workers`` workers."""
    trainer = dm.trainer
    if trainer is not None and trainer.overfit_batches:
        shuffle = False
    seed = dm.shuffle_seed if dm.shuffle_seed is not None else int(torch.initial_seed()) % 2**31
    data = dm.datasets[split]
    sampler: Any = EpochOrder(len(data), seed) if shuffle else SequentialSampler(range(len(data)))
    batches = IndexBatchSampler(sampler, dm.batch_size, dm.drop_last and shuffle)
    if len(batches) == 0:
        raise UserInputError(
            f"The {split} split of {dm.source} has {len(data)} samples, fewer than "
            f"data.batch_size={dm.batch_size}, and incomplete batches are dropped. Lower "
            "data.batch_size or give the split more samples."
        )
    workers = int(dm.num_workers or 0)
    # resumable mid-epoch without workers only: workers take batches ahead of training
    loader = ResumableLoader if shuffle and workers == 0 else DataLoader
    return follow_fit_loop(loader(
        data, batch_sampler=batches, collate_fn=keep_batch, num_workers=workers,
        pin_memory=bool(dm.pin_memory), persistent_workers=bool(dm.persistent_workers) and workers > 0,
    ), trainer)  # fmt: skip
