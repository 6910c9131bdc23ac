"""scikit-learn's handwritten digits: 1,797 real 8x8 images, bundled offline."""

from __future__ import annotations

from typing import Any

import torch

from src.data.in_memory_datamodule import InMemoryDataModule


class DigitsDataModule(InMemoryDataModule):
    """The UCI optical digits (``sklearn.datasets.load_digits``) as 1x8x8 tensors.

    Pixel values 0..16 are scaled to 0..1 and then standardised with the
    training split's mean and standard deviation.
    """

    def __init__(
        self,
        data_dir: str = "data/",
        train_val_test_split: tuple[int, int, int] = (1077, 360, 360),
        batch_size: int = 32,
        split_seed: int = 42,
        shuffle_seed: int | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            data_dir, train_val_test_split, batch_size, split_seed, shuffle_seed, drop_last
        )

    def load_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.from_numpy(bunch.images).float().div_(16.0).unsqueeze(1)
        y = torch.from_numpy(bunch.target).long()
        return x, y

    @property
    def spec(self) -> dict[str, Any]:
        return {"input_shape": [1, 8, 8], "num_classes": 10}
