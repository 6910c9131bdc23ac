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


def _fraction_sizes(split: Sequence[float], total: int) -> list[int]:
    val, test = round(total * split[1]), round(total * split[2])
    return [total - val - test, val, test]


def _rows_needed(split: Sequence[float], minimum: int) -> int:
    """The fewest samples that these fractions cut into splits of ``minimum`` or more."""
    total = max(3 * minimum, int((minimum - 1) / min(split)))  # a few steps below it
    while min(_fraction_sizes(split, total)) < minimum:
        total += 1
    return total


def _counts_like(split: Sequence[float], total: int, minimum: int) -> list[int]:
    """Three counts in the proportions of ``split`` that add up to ``total``, each at
    least ``minimum`` (``total >= 3 * minimum``); train takes what rounding leaves."""
    weights = [max(float(s), 0.0) for s in split]
    scale = sum(weights) or 1.0
    val, test = (max(minimum, int(total * w / scale)) for w in weights[1:])
    while total - val - test < minimum:  # train too small: take from the larger of val, test
        if val >= test:
            val -= 1
        else:
            test -= 1
    return [total - val - test, val, test]


def _misfit(
    split: Sequence[float],
    total: int,
    source: str,
    sizes: list[int],
    fractions: bool,
    minimum: int,
    why: str,
    unit: str,
) -> str:
    """The message for a ``train_val_test_split`` that does not fit ``total`` samples."""
    advice = (
        f"These fractions need at least {_rows_needed(split, minimum)} {unit}; "
        if fractions
        else ""
    )
    if total < 3 * minimum:
        advice += f"a data set needs at least {3 * minimum} {unit} for three splits."
    else:
        example = ", ".join(map(str, _counts_like(split, total, minimum)))
        advice += f"counts that fit would be data.train_val_test_split=[{example}]."
    advice = advice[0].upper() + advice[1:]
    if fractions:
        problem = (
            f"its {total} {unit} make splits of {sizes} (train, val, test), and every split "
            f"needs at least {minimum}{why}"
        )
    else:
        problem = (
            f"it has {total} {unit}, so the three counts must add up to {total} and each "
            f"be at least {minimum}{why}"
        )
    return f"data.train_val_test_split={list(split)} does not fit {source}: {problem}. {advice}"


def split_sizes(
    split: Sequence[float],
    total: int,
    source: str,
    minimum: int = 1,
    why: str = "",
    unit: str = "samples",
) -> list[int]:
    """The train, val and test counts that ``train_val_test_split`` asks of ``total``
    samples: three counts adding up to it, or three fractions adding up to 1. Every
    split gets at least ``minimum`` samples (``why``: the reason, in the message)."""
    if len(split) != 3:
        raise UserInputError(
            f"data.train_val_test_split={list(split)} must have three entries: train, val and test."
        )
    fractions = any(float(s) != int(s) for s in split)
    if fractions and (abs(sum(split) - 1) > 1e-6 or min(split) <= 0):
        raise UserInputError(
            f"data.train_val_test_split={list(split)}: fractions must be positive "
            "and add up to 1 (or give three counts)."
        )
    sizes = _fraction_sizes(split, total) if fractions else [int(s) for s in split]
    if fractions and min(sizes) >= minimum:
        return sizes
    if not fractions and sum(sizes) == total and min(sizes) >= minimum:
        return sizes
    raise UserInputError(_misfit(split, total, source, sizes, fractions, minimum, why, unit))


def random_split(
    x: torch.Tensor, y: torch.Tensor, sizes: list[int], seed: int, indexed: str
) -> Split:
    """``(x, y)`` cut at random (seeded by ``seed``) into train, val and test of ``sizes``."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    indices = dict(zip(SPLITS, order.split(sizes), strict=True))
    parts = {name: (x[index], y[index]) for name, index in indices.items()}
    return Split(parts, indices, indexed)
