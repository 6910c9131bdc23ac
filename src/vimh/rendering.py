"""Render a VIMH plan's notes straight into its record files, in one process or several.

The notes are rendered in chunks of ``CHUNK``, each chunk into its own records
of the files (``src.vimh.format.open_records``): spectrogram images, levels and
label bytes. ``workers`` processes render, this one and ``workers - 1``
helpers, each taking the next chunk no process has taken yet, so a core that
is slowed by other work simply takes fewer chunks. No images travel between
processes and nothing is assembled afterwards; what each note's record holds
depends on that note's parameters only, so the bytes do not depend on the
number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.utils.errors import UserInputError
from src.vimh.format import Records, create_records, fill_records, open_records, record_dtype
from src.vimh.plan import Plan

# notes rendered together: large enough to amortise the filter's per-step cost,
# small enough that a chunk's audio and frames stay in the tens of MB
CHUNK = 512
# helpers start by fork: they inherit the job at once (forkserver and spawn re-import the
# caller's main module first, seconds per helper) and run numpy only, never torch, so the
# thread pools a training process may hold do not matter to them
START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def spectrogram_images(plan: Plan, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Images (notes, channels, H, W) uint8 and their (spec_min_db, spec_max_db) for one
    value per note of every synthesizer parameter."""
    sample_rate, height, width = (plan.preset[k] for k in ("sample_rate", "height", "width"))
    audio = plan.synthesizer.render(params, sample_rate, plan.num_samples)
    return plan.spectrogram.to_bytes(plan.spectrogram.power_db(audio, sample_rate, height, width))


def num_chunks(notes: int) -> int:
    return -(-notes // CHUNK)


def usable_workers(workers: int | None, chunks: int) -> int:
    """``workers`` processes, or one per core this process may use (``None``), never more
    than there are chunks to render."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise UserInputError(
            f"workers={workers!r}: give a whole number >= 1, or null (one per core)."
        )
    return max(1, min(workers, chunks))


@dataclass(frozen=True)
class Job:
    """What every rendering process needs: each note's parameter values and label bytes,
    and the record files the notes fill in order (the first ``counts[0]`` notes the first
    file, the next ``counts[1]`` the second, ...)."""

    plan: Plan
    params: dict[str, np.ndarray]  # one value per note of every synthesizer parameter
    labels: np.ndarray  # uint8 (notes, varying parameters)
    paths: tuple[Path, ...]
    counts: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        pixels = self.plan.spectrogram.channels * self.plan.preset["height"]
        return record_dtype(self.labels.shape[1], pixels * self.plan.preset["width"])


class ChunkCounter:
    """The next chunk to render: one integer shared by the processes that render."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.next = multiprocessing.get_context(START_METHOD).Value("q", 0)

    def take(self) -> int | None:
        """A chunk no process has taken yet, or None when none is left."""
        with self.next.get_lock():
            index = self.next.value
            self.next.value = min(index + 1, self.chunks)
        return index if index < self.chunks else None

    def stop(self) -> None:
        """Leave no chunk to take: every process stops after the chunk it is rendering."""
        with self.next.get_lock():
            self.next.value = self.chunks


def render_chunk(job: Job, start: int, files: list[np.ndarray]) -> None:
    """Render notes ``start:start + CHUNK`` into their records of ``files`` (the record
    files open in this process), part into each where the chunk spans two."""
    stop = min(start + CHUNK, len(job.labels))
    images, levels = spectrogram_images(
        job.plan, {name: values[start:stop] for name, values in job.params.items()}
    )
    first = 0  # the file's first note
    for rows in files:
        low, high = max(start, first), min(stop, first + len(rows))
        if low < high:
            part = slice(low - start, high - start)
            records = Records(images[part], job.labels[low:high], levels[part])
            fill_records(rows[low - first : high - first], records)
        first += len(rows)


def _drain(job: Job, counter: ChunkCounter) -> None:
    """Render chunks until none is left to take; after an error, stop every process."""
    files = [open_records(path, job.dtype) for path in job.paths]
    try:
        while (index := counter.take()) is not None:
            render_chunk(job, index * CHUNK, files)
    finally:
        counter.stop()


# a helper's job and counter, set as it starts: a pool's initializer hands them over once,
# by fork (inherited, never pickled), where a task's arguments would be pickled per call
_ADOPTED: tuple[Job, ChunkCounter] | None = None


def _adopt(job: Job, counter: ChunkCounter) -> None:
    global _ADOPTED
    _ADOPTED = job, counter


def _drain_adopted() -> None:
    if _ADOPTED is None:
        raise RuntimeError("a rendering helper started without its job (_adopt)")
    _drain(*_ADOPTED)


def render_into(job: Job, workers: int) -> None:
    """Create the record files and render every chunk into them, in this process and
    ``workers - 1`` helpers."""
    for path, count in zip(job.paths, job.counts, strict=True):
        create_records(path, count, job.dtype)
    counter = ChunkCounter(num_chunks(len(job.labels)))
    if workers == 1:
        _drain(job, counter)
        return
    context = multiprocessing.get_context(START_METHOD)
    with ProcessPoolExecutor(
        workers - 1, mp_context=context, initializer=_adopt, initargs=(job, counter)
    ) as pool:
        helpers = [pool.submit(_drain_adopted) for _ in range(workers - 1)]
        _drain(job, counter)
        for helper in helpers:
            helper.result()  # raises a helper's error here
