"""MNIST through torchvision, with the lightning-hydra-template's 55k/5k/10k split."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from src.data.in_memory_datamodule import InMemoryDataModule
from src.utils.errors import UserInputError

# the four IDX files torchvision's MNIST reads from <data_dir>/MNIST/raw/
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNISTDataModule(InMemoryDataModule):
    """MNIST's 70,000 images (train and test files joined, as LHT does), split by count.

    ``prepare_data`` downloads the files when ``download`` is true and they are
    missing. Offline, the files must already be in ``<data_dir>/MNIST/raw/``
    (plain or ``.gz``); if they are not, the run stops naming them. ``shared``:
    the arguments of ``InMemoryDataModule``.
    """

    def __init__(
        self,
        data_dir: str = "data/",
        train_val_test_split: Sequence[int] = (55_000, 5_000, 10_000),
        batch_size: int = 128,
        download: bool = True,
        **shared: Any,
    ) -> None:
        super().__init__(data_dir, train_val_test_split, batch_size, **shared)
        self.download = download

    @property
    def source(self) -> str:
        return f"MNIST ({self.raw_dir}: train, then t10k files)"

    @property
    def raw_dir(self) -> Path:
        return Path(self.data_dir) / "MNIST" / "raw"

    def _missing_files(self) -> list[str]:
        return [name for name in MNIST_FILES if not (self.raw_dir / name).exists()]

    def _unpack_gz_files(self) -> None:
        """torchvision reads the plain files: unpack any that are only there as .gz."""
        for name in self._missing_files():
            packed = self.raw_dir / f"{name}.gz"
            if packed.exists():
                try:
                    content = gzip.decompress(packed.read_bytes())
                except (OSError, EOFError) as error:
                    raise UserInputError(
                        f"{packed} is not a readable gzip file ({error}). "
                        "Replace it with an intact copy or delete it."
                    ) from error
                partial = self.raw_dir / f"{name}.partial"
                partial.write_bytes(content)
                partial.rename(self.raw_dir / name)

    def prepare_data(self) -> None:
        self._unpack_gz_files()
        if not self._missing_files():
            return
        reason = "downloading is switched off (data.download=false)"
        if self.download:
            from torchvision.datasets import MNIST

            try:
                MNIST(self.data_dir, train=True, download=True)
                MNIST(self.data_dir, train=False, download=True)
                return
            except Exception as error:  # torchvision raises RuntimeError or URLError
                reason = f"the download failed ({_download_error(error)})"
        missing = ", ".join(self._missing_files())
        raise UserInputError(
            f"MNIST files are missing from {self.raw_dir}/ and {reason}. "
            f"Missing: {missing}. Put these IDX files (plain or .gz) there, "
            f"or run once with internet access to download them."
        )

    def _check_files(self) -> None:
        """Each IDX file's header and size, and images and labels of equal count."""
        from src.data.components.idx import check_idx

        advice = (
            "Put the original MNIST file there (plain or .gz), or delete it and let "
            "data.download=true fetch it again."
        )
        for prefix in ("train", "t10k"):
            images = check_idx(self.raw_dir / f"{prefix}-images-idx3-ubyte", 3, advice)
            labels = check_idx(self.raw_dir / f"{prefix}-labels-idx1-ubyte", 1, advice)
            if images[0] != labels[0]:
                raise UserInputError(
                    f"{self.raw_dir}/{prefix}-images-idx3-ubyte holds {images[0]} images but "
                    f"{prefix}-labels-idx1-ubyte {labels[0]} labels: the pair does not belong "
                    f"together. {advice}"
                )

    def load_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.prepare_data()  # a no-op when the files are there; names them when not
        from torchvision.datasets import MNIST

        self._check_files()
        parts = [MNIST(self.data_dir, train=train, download=False) for train in (True, False)]
        x = torch.cat([p.data for p in parts]).unsqueeze(1)  # bytes: from_raw after the split
        y = torch.cat([p.targets for p in parts]).long()
        return x, y

    def from_raw(self, images: torch.Tensor) -> torch.Tensor:
        """Inputs of images as the IDX files store them (N x 1 x 28 x 28, bytes 0..255)."""
        return images.to(torch.float32, copy=True).div_(255.0)  # never the caller's tensor

    @property
    def spec(self) -> dict[str, Any]:
        return {"input_shape": [1, 28, 28], "num_classes": 10}


def _download_error(error: Exception) -> str:
    """torchvision's download error in one line: its first line ("Error downloading
    <file>:") says nothing without the last mirror's reason, on a later line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[-1]}"
    return lines[0]
