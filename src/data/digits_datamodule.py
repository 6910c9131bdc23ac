"""scikit-learn's handwritten digits: 1,797 real 8x8 images, bundled offline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from src.data.in_memory_datamodule import InMemoryDataModule
from src.utils.errors import UserInputError


class DigitsDataModule(InMemoryDataModule):
    """The UCI optical digits (``sklearn.datasets.load_digits``) as 1x8x8 tensors.

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
        other args: see ``InMemoryDataModule``.
    """

    def __init__(
        self,
        data_dir: str = "data/",
        train_val_test_split: tuple[int, int, int] = (1077, 360, 360),
        batch_size: int = 32,
        split_seed: int = 42,
        shuffle_seed: int | None = None,
        drop_last: bool = False,
        digits: Sequence[int] | None = None,
        invert: bool = False,
        num_folds: int | None = None,
        fold: int | None = None,
    ) -> None:
        super().__init__(
            data_dir,
            train_val_test_split,
            batch_size,
            split_seed,
            shuffle_seed,
            drop_last,
            num_folds=num_folds,
            fold=fold,
        )
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
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.from_numpy(bunch.images).float().div_(16.0).unsqueeze(1)
        if self.invert:
            x = 1.0 - x
        y = torch.from_numpy(bunch.target).long()
        return x, y

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        super().setup(stage)
        if self.digits is None:
            return
        relabel = torch.full((10,), -1, dtype=torch.long)
        relabel[self.digits] = torch.arange(len(self.digits))
        for name, (x, y) in self.splits.items():
            keep = relabel[y] >= 0
            self.splits[name] = (x[keep].contiguous(), relabel[y[keep]].contiguous())
            self.split_indices[name] = self.split_indices[name][keep]

    @property
    def spec(self) -> dict[str, Any]:
        num_classes = 10 if self.digits is None else len(self.digits)
        return {"input_shape": [1, 8, 8], "num_classes": num_classes}
