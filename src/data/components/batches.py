"""Batches cut by index from tensors held in memory, served by a real ``DataLoader``.

Small data sets fit in memory many times over, so the template keeps them as
tensors (already normalised) and cuts each batch with one ``index_select``:
no per-sample Python transform, no per-sample collate, no worker processes.
This is the main reason an epoch here costs about what a plain PyTorch loop
costs.

The loader is a ``torch.utils.data.DataLoader`` whose batch sampler yields
whole index tensors and whose data set cuts all its tensors with one of them
(``__getitems__``, which the DataLoader calls with a batch's indices); its
iterator is torch's, less a per-batch profiler range (``_BatchIter``). So
every Lightning feature that expects a DataLoader works as it
does in LHT: ``overfit_batches``, fractional ``limit_*_batches``,
``use_distributed_sampler`` (Lightning puts its ``DistributedSampler`` into
our batch sampler), the batch-size and learning-rate tuners.

The shuffle order of an epoch depends only on ``seed`` and the epoch number,
which Lightning passes to ``sampler.set_epoch`` at the start of every epoch.
A run resumed from a checkpoint therefore sees exactly the batches the
uninterrupted run would have seen.

Mid-epoch too: the training loader is a ``ResumableLoader``, whose
``state_dict`` (the epoch, the batches served so far in it, and the global
random generators' state at that moment) Lightning's fit loop stores in every
checkpoint, because the loader implements ``state_dict``/``load_state_dict``
(its ``_Stateful`` check in ``CombinedLoader._state_dicts``). On resume the
fit loop hands the state back before it starts the loader's iterator; the
first batch then drawn is the first one the stopped run had not trained on,
and the random generators are set to where they were (after the iterator's
own seed draw, which the stopped run made at the start of the epoch), so
dropout draws the same masks. A checkpoint written at the end of an epoch
resumes with the next epoch from its start, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)
from torch.utils.data._utils.fetch import _MapDatasetFetcher
from torch.utils.data._utils.pin_memory import pin_memory as pin_batch
from torch.utils.data.dataloader import _SingleProcessDataLoaderIter

from src.utils.errors import UserInputError
from src.utils.rng import rng_states, set_rng_states


class TensorSamples(Dataset):
    """Equally long tensors as a map-style data set: ``ds[i]`` is one sample
    ``(x_i, y_i, ...)`` (what LHT's ``data_train[i]`` gives), and
    ``ds.__getitems__(index)`` a whole batch, each tensor cut with one
    ``index_select``."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        if not tensors:
            raise ValueError("TensorSamples needs at least one tensor")
        size = len(tensors[0])
        if any(len(t) != size for t in tensors):
            raise ValueError(f"tensors differ in length: {[len(t) for t in tensors]}")
        self.tensors = tuple(tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(
        self, indices: slice | torch.Tensor | Sequence[int]
    ) -> tuple[torch.Tensor, ...]:
        if isinstance(indices, slice):  # a run of samples in order: views, no copy
            return tuple([t[indices] for t in self.tensors])
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple([t.index_select(0, index) for t in self.tensors])


def keep_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The DataLoader's collate: ``__getitems__`` already made the batch."""
    return batch


class EpochOrder(RandomSampler):
    """A random permutation of ``range(size)`` per epoch, a function of ``(seed, epoch)``.

    It is a ``RandomSampler`` so that Lightning knows the loader shuffles: under
    DDP it then gives our batch sampler a shuffling ``DistributedSampler``
    (seeded with the run's seed, per epoch) in its place.
    """

    def __init__(self, size: int, seed: int) -> None:
        super().__init__(range(size))
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def indices(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())


class IndexBatchSampler(BatchSampler):
    """``BatchSampler`` that yields each batch as one index tensor (or, in order,
    as a ``slice``, which cuts views instead of copies).

    With our ``EpochOrder`` the batches are cut from one index tensor per
    epoch; with any other sampler (Lightning's
    ``DistributedSampler``, a user's) its indices are gathered once per epoch
    and cut the same way. Lightning re-creates it with ``(sampler, batch_size,
    drop_last)`` when it swaps the sampler.

    It counts the batches served in the current epoch; ``state_dict`` and
    ``load_state_dict`` (called through ``ResumableLoader``) let an epoch stopped
    part-way continue with the batches it had left (see the module docstring).
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.served = 0  # batches yielded in the current epoch
        self.resume: dict[str, Any] | None = None  # where the next epoch starts, once

    def _epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def _batches(self) -> Sequence[torch.Tensor | slice]:
        if isinstance(self.sampler, SequentialSampler):  # in order: slices (views)
            size = len(self.sampler)
            starts = range(0, len(self) * self.batch_size, self.batch_size)
            return [slice(start, min(start + self.batch_size, size)) for start in starts]
        if isinstance(self.sampler, EpochOrder):
            order = self.sampler.indices()
        else:
            order = torch.as_tensor(list(self.sampler), dtype=torch.long)
        return order[: len(self) * self.batch_size].split(self.batch_size)

    def _start(self) -> int:
        """Batches to skip: those the stopped run trained on, when this is its epoch."""
        resume, self.resume = self.resume, None
        if resume is None or resume["epoch"] != self._epoch():
            return 0
        set_rng_states(resume["rng_states"])  # as they were after that batch
        return resume["served"]

    def __iter__(self) -> Iterator[torch.Tensor | slice]:
        start = self._start()
        batches = self._batches()
        self.served = start
        for batch in batches[start:]:
            self.served += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self._epoch(),
            "served": self.served,
            "batches": len(self),
            "batch_size": self.batch_size,
            "rng_states": rng_states(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        now = {"batches": len(self), "batch_size": self.batch_size}
        saved = {key: state[key] for key in now}
        if saved != now and 0 < state["served"] < state["batches"]:
            raise UserInputError(
                f"The checkpoint stopped part-way through an epoch of {state['batches']} "
                f"batches of {state['batch_size']} samples, but the training data now make "
                f"{len(self)} batches of {self.batch_size}. Resume with the data settings "
                "of the stopped run (data.batch_size, the split and its settings), or "
                "resume from a checkpoint written at the end of an epoch (epoch_*.ckpt)."
            )
        self.resume = dict(state)


class _BatchIter(_SingleProcessDataLoaderIter):
    """torch's single-process DataLoader iterator, less its per-batch profiler range.

    torch wraps every batch it serves in ``record_function``, a profiler range that
    costs ~14 us a batch even when no profiler runs (torch 2.14 on CPU): for batches
    cut by one slice, more than the cutting itself (in order, the DataLoader took
    1.67x the plain loop's time, this iterator 1.02-1.06x: benchmarks/loader_speed.py).
    It is the same iterator otherwise (sampler, the data set's ``__getitems__`` or
    torch's fetcher, the loader's ``collate_fn``, pinning, the seed draw at its start),
    and while a profiler runs it is torch's own, range and all.
    Written here because torch has no switch for the range; it relies on torch's
    private iterator and map-style fetcher classes, which tests check the loader still
    uses and matches.
    """

    def __init__(self, loader: DataLoader) -> None:
        super().__init__(loader)
        # what torch's map-style fetcher calls for a batch, called here without its frame
        # and its checks at every batch (~1 us): dataset.__getitems__, then collate_fn
        fetcher, getitems = self._dataset_fetcher, getattr(self._dataset, "__getitems__", None)
        direct = type(fetcher) is _MapDatasetFetcher and fetcher.auto_collation and getitems
        self._getitems = getitems if direct else None
        self._collate = fetcher.collate_fn

    def __next__(self) -> Any:
        if torch.autograd._profiler_enabled() or self._sampler_iter is None:
            return super().__next__()
        if self._getitems is not None:
            data = self._collate(self._getitems(next(self._sampler_iter)))
        else:
            data = self._dataset_fetcher.fetch(next(self._sampler_iter))
        if self._pin_memory:
            data = pin_batch(data, self._pin_memory_device)
        self._num_yielded += 1
        return data


class BatchLoader(DataLoader):
    """torch's ``DataLoader`` for data sets cut a whole batch at a time (``__getitems__``:
    tensors in memory, memmapped records), served by ``_BatchIter`` when it has no
    worker processes."""

    def _get_iterator(self) -> Any:
        if self.num_workers == 0:
            return _BatchIter(self)
        return super()._get_iterator()


class ResumableLoader(BatchLoader):
    """A ``DataLoader`` whose batch sampler's position goes into Lightning's checkpoints
    (Lightning saves and restores loaders that have ``state_dict``/``load_state_dict``).
    Same constructor as ``DataLoader``, so Lightning can re-create it (DDP).

    ``finished_batches``, when the data module sets it (``follow_fit_loop``), says how
    many batches of this epoch the fit loop has finished: a run stopped with a batch in
    flight (Ctrl-C in a training step) saved one batch less than it was served, and
    Lightning resumes its loop at the finished count, so the loader must too.
    """

    finished_batches: Callable[[], int] | None = None

    def state_dict(self) -> dict[str, Any]:
        if not isinstance(self.batch_sampler, IndexBatchSampler):
            return {}
        state = self.batch_sampler.state_dict()
        if self.finished_batches is not None:
            state["served"] = min(state["served"], int(self.finished_batches()))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and isinstance(self.batch_sampler, IndexBatchSampler):
            self.batch_sampler.load_state_dict(state)


def follow_fit_loop(loader: DataLoader, trainer: Any) -> DataLoader:
    """Let a ``ResumableLoader`` count the batches ``trainer``'s fit loop has finished in
    the current epoch (Lightning's own progress counter, where a resumed loop restarts)."""
    if isinstance(loader, ResumableLoader) and trainer is not None:
        progress = trainer.fit_loop.epoch_loop.batch_progress
        loader.finished_batches = lambda: progress.current.completed
    return loader


def tensor_loader(
    tensors: Sequence[torch.Tensor],
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    seed: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A ``DataLoader`` over in-memory tensors, cutting each batch by index.

    Args:
        tensors: tensors whose first dimension is the sample index.
        batch_size: samples per batch.
        shuffle: reshuffle every epoch (seeded, see ``EpochOrder``).
        drop_last: leave out a final incomplete batch.
        seed: base seed of the shuffle order.
        pin_memory: pin each batch (for faster host-to-GPU copies).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    samples = TensorSamples(*tensors)
    size = len(samples)
    sampler: Any = EpochOrder(size, seed) if shuffle else SequentialSampler(range(size))
    loader = ResumableLoader if shuffle else BatchLoader  # the training loader resumes mid-epoch
    return loader(
        samples,
        batch_sampler=IndexBatchSampler(sampler, batch_size, drop_last),
        collate_fn=keep_batch,
        pin_memory=pin_memory,
    )
