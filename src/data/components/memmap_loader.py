"""The ``DataLoader`` of a split read from a file in place (``data.in_memory=false``).

Shared by the memory-mapped modes (VIMH record files, tabular caches): the data set
cuts a batch with ``__getitems__`` from a mapping of the file, and the loader gives it
the batches of the in-memory path (``components.batches``: the same ``EpochOrder`` and
index batches, so the two modes see the same samples in the same order), read in
``num_workers`` worker processes.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import torch
from torch.utils.data import DataLoader, SequentialSampler, get_worker_info

from src.data.components.batches import (
    BatchLoader,
    EpochOrder,
    IndexBatchSampler,
    ResumableLoader,
    follow_fit_loop,
    keep_batch,
)
from src.utils.errors import UserInputError

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
_tuned_pid = [0]  # the process whose allocator was looked at (a forked worker is another)


def tune_worker_malloc() -> None:
    """In a loader worker (once per process): fix glibc's mmap threshold at 128 KiB.

    glibc serves an allocation of 128 KiB or more with its own mapping, given back to the
    system when freed, until one such block is freed: then it raises the threshold to that
    size (up to 32 MiB), and a batch's buffers (MiBs) come from its heap, whose freed
    pages it keeps. In a forked worker those heap pages are the training process's,
    shared until written; reused for batch after batch, they become the worker's own
    copies. Measured on benchmarks/vimh_memory.py (40,000 records of 128x128, 2
    workers): one worker's private memory 296 MiB with glibc's policy, 11 MiB with the
    fixed threshold. The training process keeps glibc's policy (its speed depends on it).
    """
    pid = os.getpid()
    if _tuned_pid[0] == pid:
        return
    _tuned_pid[0] = pid
    if get_worker_info() is None:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): another allocator, nothing to tune
        return
    libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)


def memmap_loader(dm: Any, split: str, shuffle: bool) -> DataLoader:
    """A ``DataLoader`` of ``dm.datasets[split]`` with the in-memory path's batches; the
    data module gives ``trainer``, ``shuffle_seed``, ``batch_size``, ``drop_last``,
    ``num_workers``, ``pin_memory``, ``persistent_workers`` and ``source``."""
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
    loader = ResumableLoader if shuffle and workers == 0 else BatchLoader
    return follow_fit_loop(loader(
        data, batch_sampler=batches, collate_fn=keep_batch, num_workers=workers,
        pin_memory=bool(dm.pin_memory), persistent_workers=bool(dm.persistent_workers) and workers > 0,
    ), trainer)  # fmt: skip


class MemmapMode:
    """``data.in_memory=false`` for a data module built on ``InMemoryDataModule``: its
    splits read from files in place (``datasets``), loaded by ``memmap_loader``; with
    ``in_memory=True`` everything is the in-memory module's own. Put it first among the
    bases; the module sets ``in_memory`` and ``datasets = {}`` and provides
    ``memmap_splits() -> (datasets, split_indices, indexed)``."""

    in_memory: bool
    datasets: dict[str, Any]

    def memmap_splits(self) -> tuple[dict[str, Any], Any, Any]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.in_memory:
            super().setup(stage)
        elif not self.datasets:
            self.datasets, self.split_indices, self.indexed = self.memmap_splits()

    def _loader(self, split: str, shuffle: bool) -> Any:
        if self.in_memory:
            return super()._loader(split, shuffle)
        self.setup()
        return memmap_loader(self, split, shuffle)

    @property
    def data_train(self) -> Any:
        return super().data_train if self.in_memory else self.datasets.get("train")

    @property
    def data_val(self) -> Any:
        return super().data_val if self.in_memory else self.datasets.get("val")

    @property
    def data_test(self) -> Any:
        return super().data_test if self.in_memory else self.datasets.get("test")
