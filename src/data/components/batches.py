"""Batches cut by index from tensors held in memory.

Small data sets fit in memory many times over, so the template keeps them as
tensors (already normalised) and cuts each batch with one indexing operation:
no per-sample Python transform, no collate, no worker processes. This is the
main reason an epoch here costs about what a plain PyTorch loop costs.

The shuffle order of an epoch depends only on ``seed`` and the epoch number,
which Lightning passes to ``sampler.set_epoch`` at the start of every epoch.
A run resumed from a checkpoint therefore sees exactly the batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import TensorDataset


class EpochOrder:
    """The index order of one epoch, a function of ``(seed, epoch)`` only.

    Lightning finds this object as ``loader.sampler`` and calls ``set_epoch``.
    Under distributed training each rank keeps every ``world_size``-th index of
    the shared permutation, after trimming it to a multiple of ``world_size``
    so that all ranks run the same number of steps.
    """

    def __init__(
        self, size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.world_size if self.world_size > 1 else self.size

    def indices(self) -> torch.Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        if self.world_size > 1:
            usable = (self.size // self.world_size) * self.world_size
            order = order[:usable][self.rank :: self.world_size]
        return order


class TensorBatchLoader:
    """Iterates over batches of equally long tensors, cut by index.

    Args:
        tensors: tensors whose first dimension is the sample index.
        batch_size: samples per batch.
        shuffle: reshuffle every epoch (seeded, see ``EpochOrder``).
        drop_last: leave out a final incomplete batch.
        seed: base seed of the shuffle order.
        rank, world_size: this process's share under distributed training.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not tensors:
            raise ValueError("TensorBatchLoader needs at least one tensor")
        size = len(tensors[0])
        if any(len(t) != size for t in tensors):
            lengths = [len(t) for t in tensors]
            raise ValueError(f"tensors differ in length: {lengths}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.tensors = tuple(tensors)
        # what Lightning's tuners read as the data set's size
        self.dataset = TensorDataset(*self.tensors)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = EpochOrder(size, shuffle, seed, rank, world_size)
        self.batch_sampler = None  # Lightning looks for one; batches are cut here

    def __len__(self) -> int:
        samples = len(self.sampler)
        if self.drop_last:
            return samples // self.batch_size
        return -(-samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self.sampler.indices()
        n_batches = len(self)
        if not self.sampler.shuffle and self.sampler.world_size == 1:
            # contiguous slices are views: no copy at all
            for i in range(n_batches):
                start = i * self.batch_size
                yield tuple(t[start : start + self.batch_size] for t in self.tensors)
            return
        for index in order[: n_batches * self.batch_size].split(self.batch_size):
            yield tuple(t[index] for t in self.tensors)
