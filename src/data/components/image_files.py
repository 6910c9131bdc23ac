"""Image files as samples: decoded by PIL in loader workers, transformed, normalised.

Each sample goes: file -> PIL (converted to ``L`` or ``RGB``) -> uint8 tensor
(C, H, W) -> the configured ``transforms.v2`` pipeline (which works on uint8,
as TrivialAugment and RandAugment need) -> float in 0..1 -> ``(x - mean) / std``.
The normalisation is the data module's last step, so the transform configs
only resize and augment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from src.data.components.file_samples import Unreadable

MODES = {1: "L", 3: "RGB"}


def read_image(path: Path, channels: int) -> Tensor:
    """uint8 (channels, H, W) of an image file (any format PIL reads)."""
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    with Image.open(path) as image:
        return pil_to_tensor(image.convert(MODES[channels]))


def to_input(image: Tensor, mean: Tensor | None, std: Tensor | None) -> Tensor:
    """What a net takes from a transformed image: float, 0..1 if it was uint8, then
    ``(x - mean) / std`` per channel when ``mean`` is given (shaped (C, 1, 1))."""
    x = image.float().div_(255.0) if image.dtype == torch.uint8 else image.float()
    return x if mean is None else (x - mean) / std


class ImageFiles(Dataset):
    """``(x, label)`` of the image files ``files`` (relative to ``raw``), read lazily;
    ``keep_uint8``: x as the transform leaves it (uint8), not scaled or normalised."""

    def __init__(
        self,
        raw: Path,
        files: Sequence[str],
        labels: Sequence[int],
        channels: int,
        transform: Callable[[Tensor], Tensor] | None,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        keep_uint8: bool = False,
    ) -> None:
        self.raw, self.files, self.channels = raw, list(files), channels
        self.keep_uint8 = keep_uint8
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.transform = transform
        self.mean = None if mean is None else torch.tensor(mean).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor] | Unreadable:
        path = self.raw / self.files[index]
        try:
            image = read_image(path, self.channels)
        except (OSError, ValueError, SyntaxError) as error:  # PIL's ways of saying "corrupt"
            return Unreadable(str(path), str(error))
        if self.transform is not None:
            image = self.transform(image)
        if self.keep_uint8:
            return image, self.labels[index]
        return to_input(image, self.mean, self.std), self.labels[index]


def image_sizes(raw: Path, files: Sequence[str]) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Each readable file's (width, height) from its header, and the files PIL cannot open
    (a quick check: it reads the header only, not the pixels)."""
    from PIL import Image, UnidentifiedImageError

    sizes: dict[str, tuple[int, int]] = {}
    bad: list[str] = []
    for rel in files:
        try:
            with Image.open(raw / rel) as image:
                sizes[rel] = image.size
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
            bad.append(rel)
    return sizes, bad


def stats_path(splits: Path, split_name: str, files: Sequence[str], key: dict[str, Any]) -> Path:
    """Where the mean/std of a split are cached: beside its split file, named after a
    hash of its files and the settings they depend on."""
    digest = hashlib.sha256(json.dumps([list(files), key], sort_keys=True).encode()).hexdigest()
    return splits / f"stats_{split_name}_{digest[:12]}.json"


def channel_stats(dataset: Dataset, workers: int, batch_size: int = 64) -> dict[str, list[float]]:
    """Per-channel mean and standard deviation over every pixel of ``dataset`` (0..1 values,
    unnormalised), one pass, summed in float64."""
    from torch.utils.data import DataLoader

    from src.data.components.file_samples import CheckedCollate, LoaderProblem
    from src.utils.errors import UserInputError

    # a generator of its own: a loader draws its workers' base seed from the global RNG
    # otherwise, and the run that computes the stats trained unlike the runs that read them
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=CheckedCollate(True),
        generator=torch.Generator().manual_seed(0),
    )
    total = total_sq = None
    count = 0
    for batch in loader:
        if isinstance(batch, LoaderProblem):
            raise UserInputError(batch.message)
        x = batch[0].double()
        s, sq = x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3))
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return {"mean": mean.tolist(), "std": std.clamp_min(1e-6).tolist()}
