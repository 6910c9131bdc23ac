"""The ``DataLoader`` of a split read from a file in place (``data.in_memory=false``).

Shared by the memory-mapped modes (VIMH record files, tabular caches): the data set
cuts a batch with ``__getitems__`` from a mapping of the file, and the loader gives it
the batches of the in-memory path (``components.batches``: the same ``EpochOrder`` and
index batches, so the two modes see the same samples in the same order), read in
``num_workers`` worker processes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, SequentialSampler

from src.data.components.batches import EpochOrder, IndexBatchSampler, keep_batch
from src.utils.errors import UserInputError


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
    return DataLoader(
        data, batch_sampler=batches, collate_fn=keep_batch, num_workers=workers,
        pin_memory=bool(dm.pin_memory), persistent_workers=bool(dm.persistent_workers) and workers > 0,
    )  # fmt: skip
