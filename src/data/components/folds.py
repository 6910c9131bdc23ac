"""k-fold cross-validation by index: which fold each sample of a training pool falls in.

The pool's positions are put in a seeded random order, optionally grouped
class by class (``strata``), and dealt out to the folds in turn: position
``i`` of that order goes to fold ``i % num_folds``. So the folds differ in
size by at most one sample, and with strata each class is shared out the
same way (its count differs by at most one between folds), which keeps the
class proportions of every fold those of the pool.
"""

from __future__ import annotations

import torch


def assign_folds(
    size: int, num_folds: int, seed: int, strata: torch.Tensor | None = None
) -> torch.Tensor:
    """The fold (0..num_folds-1) of each of ``size`` pool positions, a function of the
    arguments only. ``strata``: one integer label per position to stratify by."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    if strata is not None:
        order = order[torch.argsort(strata[order], stable=True)]
    folds = torch.empty(size, dtype=torch.long)
    folds[order] = torch.arange(size) % num_folds
    return folds


def fold_split(
    size: int, num_folds: int, fold: int, seed: int, strata: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (ascending) of the training part (every fold but ``fold``) and of the
    validation part (fold ``fold``) of a pool of ``size`` samples."""
    folds = assign_folds(size, num_folds, seed, strata)
    held_out = folds == fold
    return torch.nonzero(~held_out).flatten(), torch.nonzero(held_out).flatten()
