"""scikit-learn's handwritten digits: 1,797 real 8x8 images, bundled offline."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.components.splits import SPLITS, Split
from src.data.in_memory_datamodule import InMemoryDataModule
from src.utils.errors import UserInputError

# the digits as arrays under data_dir, written on first use: importing scikit-learn's
# datasets module costs about 1.6 s of every run's start-up, reading this file 1 ms
CACHE = "digits/digits.npz"


def read_digits(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 images (8x8, values 0..16) and labels: from ``cache``, or from
    scikit-learn, then saved as ``cache`` for the next run."""
    if cache.is_file():
        try:
            with np.load(cache) as saved:
                return saved["images"], saved["target"]
        except (OSError, ValueError, KeyError) as error:
            raise UserInputError(
                f"{cache} (the digits, saved from scikit-learn on first use) cannot be read "
                f"({error}). Delete it: the next run writes it again."
            ) from error
    from sklearn.datasets import load_digits

    bunch = load_digits()
    cache.parent.mkdir(parents=True, exist_ok=True)
    # written beside, then renamed: a parallel job never reads half a file
    partial = cache.with_name(f".{cache.name}.{os.getpid()}.npz")
    np.savez(partial, images=bunch.images.astype(np.uint8), target=bunch.target)
    os.replace(partial, cache)
    return bunch.images, bunch.target


class DigitsDataModule(InMemoryDataModule):
    """The UCI optical digits (``sklearn.datasets.load_digits``) as 1x8x8 tensors.

    scikit-learn's copy is read once and kept in ``<data_dir>/digits/digits.npz``.

    Pixel values 0..16 are scaled to 0..1 and then standardised with the
    training split's mean and standard deviation.

    Args:
        digits: keep only these digits, relabelled 0..k-1 in the order given
            (``[5, 6, 7, 8, 9]``: 5 becomes class 0). The selection is made after
            the split of all 1,797 images, so a sample never changes split
            between two tasks and the split counts stay those of the whole set.
        invert: flip the pixel values (white digits become black), a second
            task on the same images.
        num_folds, fold: k-fold cross-validation; the folds are dealt from all
            ten digits (stratified), before ``digits`` selects some.
        shared: split_seed, shuffle_seed, drop_last, num_folds, fold, num_workers,
            pin_memory, persistent_workers: see ``InMemoryDataModule``.
    """

    def __init__(
        self,
        data_dir: str = "data/",
        train_val_test_split: Sequence[int] = (1077, 360, 360),
        batch_size: int = 32,
        digits: Sequence[int] | None = None,
        invert: bool = False,
        **shared: Any,
    ) -> None:
        super().__init__(data_dir, train_val_test_split, batch_size, **shared)
        if digits is not None:
            digits = [int(d) for d in digits]
            if (
                len(set(digits)) != len(digits)
                or len(digits) < 2
                or not set(digits) <= set(range(10))
            ):
                raise UserInputError(
                    f"data.digits={digits} must name at least two different digits from 0 to 9, "
                    "for example data.digits=[0,1,2,3,4]."
                )
        self.digits = digits
        self.invert = invert

    def load_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, target = read_digits(Path(self.data_dir) / CACHE)
        x = torch.from_numpy(images).unsqueeze(1)  # as stored: from_raw after the split
        y = torch.from_numpy(target).long()
        return x, y

    def from_raw(self, images: torch.Tensor) -> torch.Tensor:
        """Inputs of images as scikit-learn stores them (N x 1 x 8 x 8, values 0..16)."""
        x = images.to(torch.float32, copy=True).div_(16.0)  # never the caller's tensor
        return x.neg_().add_(1.0) if self.invert else x

    def finish_split(self, split: Split) -> Split:
        """Keep only the chosen ``digits``, relabelled 0..k-1."""
        if self.digits is None:
            return split
        relabel = torch.full((10,), -1, dtype=torch.long)
        relabel[self.digits] = torch.arange(len(self.digits))
        for name in SPLITS:
            split = split.keep(name, relabel[split.parts[name][1]] >= 0)
        parts = {name: (x, relabel[y]) for name, (x, y) in split.parts.items()}
        return split._replace(parts=parts)

    def class_names(self, head: str = "") -> list[str] | None:
        """The digits kept (``digits=[5,6,7,8,9]``: class 0 is ``5``); None for all ten,
        whose class indices are the digits."""
        return None if self.digits is None else [str(d) for d in self.digits]

    @property
    def spec(self) -> dict[str, Any]:
        num_classes = 10 if self.digits is None else len(self.digits)
        return {"input_shape": [1, 8, 8], "num_classes": num_classes}
