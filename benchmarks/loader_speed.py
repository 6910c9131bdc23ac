"""The in-memory DataLoader against the hand-written batch loop it replaced.

Until the loader became a real ``torch.utils.data.DataLoader`` (so that
``overfit_batches``, fractional limits, the distributed sampler and the tuners
work), batches were cut by a plain iterator: one ``randperm`` per epoch, then
``t[index]`` per tensor and batch. This script times both on the same
tensors, shuffled and in order, and prints the ratio (DataLoader / plain
loop): near 1 means the DataLoader costs nothing extra. Only the loading is
timed (no model), which is the most the loader's overhead can show.

Usage: ``python benchmarks/loader_speed.py [--samples 55000] [--batch-size 128] [--runs 9]``
(MNIST's training split by default). Figures on a shared machine are indicative.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable

import rootutils

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

import torch  # noqa: E402
from bench_results import record  # noqa: E402  (this folder: the script's own)

from src.data.components.batches import tensor_loader  # noqa: E402


def plain_loop(tensors: tuple[torch.Tensor, ...], batch_size: int, shuffle: bool, epoch: int):
    """The previous loader's iteration: one permutation, then index per tensor (slices,
    which are views, when in order)."""
    size = len(tensors[0])
    if not shuffle:
        for start in range(0, size, batch_size):
            yield tuple(t[start : start + batch_size] for t in tensors)
        return
    order = torch.randperm(size, generator=torch.Generator().manual_seed(epoch))
    for index in order.split(batch_size):
        yield tuple(t[index] for t in tensors)


def seconds(make_epoch: Callable[[int], Iterable], epochs: int) -> float:
    """One run of ``epochs`` epochs, touching every batch."""
    start = time.perf_counter()
    for epoch in range(epochs):
        for batch in make_epoch(epoch):
            batch[0].sum()  # a consumer, as a model's first op would be
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=55_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=9, help="runs of each side; the best counts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tensors = (torch.randn(args.samples, 1, 28, 28), torch.randint(0, 10, (args.samples,)))
    for shuffle in (True, False):
        loader = tensor_loader(tensors, args.batch_size, shuffle=shuffle, seed=0)

        def loader_epoch(epoch: int, loader=loader, shuffle=shuffle) -> Iterable:
            if shuffle:
                loader.batch_sampler.sampler.set_epoch(epoch)
            return loader

        def plain_epoch(epoch: int, shuffle=shuffle) -> Iterable:
            return plain_loop(tensors, args.batch_size, shuffle, epoch)

        # the best of --runs runs of each, taken in turns (an in-order run lasts ~35 ms)
        runs = [(seconds(plain_epoch, args.epochs), seconds(loader_epoch, args.epochs))
                for _ in range(args.runs)]  # fmt: skip
        plain, ours = (min(run[side] for run in runs) for side in (0, 1))
        kind = "shuffled" if shuffle else "in order"
        print(
            f"{kind:9s} {args.samples} samples x {args.epochs} epochs: plain loop {plain:.3f} s, "
            f"DataLoader {ours:.3f} s, ratio {ours / plain:.2f}"
        )
        record(f"in-memory loader, {kind}: DataLoader / plain", ours / plain, "x",
               "index_select loop, no DataLoader", "<= 1x", ours / plain <= 1.0)  # fmt: skip


if __name__ == "__main__":
    main()
