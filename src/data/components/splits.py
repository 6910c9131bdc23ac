"""A data set cut into train, val and test, with where each sample came from.

``Split`` is what a data module's ``load_splits`` returns: the tensors of each
split, each split's sample indices into the data set, and what those indices
index (in words, for ``<run>/splits.json``). Returning the indices with the
tensors keeps them together: nothing is left in an attribute for the caller
to find.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from src.utils.errors import UserInputError

SPLITS = ("train", "val", "test")


class Split(NamedTuple):
    """``parts``: split name -> tensors (inputs first, labels second, then any
    others); ``indices``: split name -> sample indices into the data set;
    ``indexed``: what the indices index."""

    parts: dict[str, tuple[torch.Tensor, ...]]
    indices: dict[str, torch.Tensor]
    indexed: str

    def keep(self, name: str, mask: torch.Tensor) -> Split:
        """This split with only the samples of split ``name`` where ``mask`` holds."""
        parts = {**self.parts, name: tuple(t[mask] for t in self.parts[name])}
        return Split(parts, {**self.indices, name: self.indices[name][mask]}, self.indexed)


def numbered_in_turn(parts: dict[str, tuple[torch.Tensor, ...]], indexed: str) -> Split:
    """A ``Split`` whose indices number the samples of train, val and test one after another."""
    sizes = [len(parts[name][0]) for name in SPLITS]
    indices = dict(zip(SPLITS, torch.arange(sum(sizes)).split(sizes), strict=True))
    return Split(parts, indices, indexed)


def split_sizes(split: Sequence[float], total: int, source: str) -> list[int]:
    """The train, val and test counts that ``train_val_test_split`` asks of ``total``
    samples: three counts adding up to it, or three fractions adding up to 1."""
    if len(split) != 3:
        raise UserInputError(
            f"data.train_val_test_split={list(split)} must have three entries: train, val and test."
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
                f"data.train_val_test_split={list(split)} does not fit {source}: its "
                f"{total} samples make splits of {sizes}, and every split needs at least "
                "one. Use more data or larger fractions."
            )
        return sizes
    sizes = [int(s) for s in split]
    if sum(sizes) != total or min(sizes) < 1:
        raise UserInputError(
            f"data.train_val_test_split={sizes} does not fit {source}: "
            f"the data set has {total} samples, so the three counts must be positive "
            f"and add up to {total}."
        )
    return sizes


def random_split(
    x: torch.Tensor, y: torch.Tensor, sizes: list[int], seed: int, indexed: str
) -> Split:
    """``(x, y)`` cut at random (seeded by ``seed``) into train, val and test of ``sizes``."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    indices = dict(zip(SPLITS, order.split(sizes), strict=True))
    parts = {name: (x[index], y[index]) for name, index in indices.items()}
    return Split(parts, indices, indexed)
