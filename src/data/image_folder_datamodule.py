"""Image folders: ``<root>/raw/<class>/<file>`` read lazily, augmented in loader workers.

``data=image_folder data.root=<root>`` after ``make split ROOT=<root>``. The
transforms are ``torchvision.transforms.v2`` pipelines from
``configs/data/transforms/`` (``data/transforms=default|light|strong``), one
for training and one for val/test; the data module converts to float and
normalises after them, with the training split's per-channel mean/std
(computed once, cached beside the split files) unless ``normalize`` says
otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from src.data.components.folder_splits import IMAGE_EXTENSIONS, split_names
from src.data.components.image_files import ImageFiles, channel_stats, image_sizes, stats_path
from src.data.folder_datamodule import FolderDataModule
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__, rank_zero_only=True)

Transform = Callable[[Tensor], Tensor]


class ImageFolderDataModule(FolderDataModule):
    """Images of ``<root>/raw/<class>/`` as ``(x, label)`` batches, x float (C, S, S).

    Args:
        root: the data folder (None: the example folder of data.example).
        image_size: height and width the transforms produce (checked on the data).
        channels: 1 (greyscale, PIL mode L) or 3 (RGB); every image is converted.
        transforms: ``{"train": pipeline, "eval": pipeline}`` of uint8 (C, H, W) tensors
            (``configs/data/transforms/``); ``None`` for none.
        normalize: ``"auto"`` (per-channel mean/std of the training split, cached),
            ``{"mean": [...], "std": [...]}`` (e.g. ImageNet's for pretrained weights),
            or ``None`` (values 0..1).
        shared: batch_size, shuffle_seed, drop_last, num_folds, fold, num_workers,
            pin_memory, persistent_workers, skip_corrupt, example: see ``FolderDataModule``.
    """

    extensions = IMAGE_EXTENSIONS

    def __init__(
        self,
        root: str | None,
        image_size: int = 32,
        channels: int = 3,
        transforms: Mapping[str, Transform | None] | None = None,
        normalize: str | Mapping[str, Sequence[float]] | None = "auto",
        **shared: Any,
    ) -> None:
        super().__init__(root, **shared)
        if channels not in (1, 3):
            raise UserInputError(f"data.channels={channels} must be 1 (greyscale) or 3 (RGB).")
        transforms = dict(transforms or {})
        unknown = sorted(set(transforms) - {"train", "eval"})
        if unknown:
            raise UserInputError(f"data.transforms has keys {unknown}; it takes train and eval.")
        self.image_size, self.channels = image_size, channels
        self.train_transform = transforms.get("train")
        self.eval_transform = transforms.get("eval")
        if isinstance(normalize, str) and normalize != "auto":
            raise UserInputError(
                f"data.normalize={normalize!r}: use auto, null, or {{mean: [...], std: [...]}}."
            )
        self.normalize = normalize
        self.mean: list[float] | None = None
        self.std: list[float] | None = None

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "input_shape": [self.channels, self.image_size, self.image_size],
            "num_classes": len(self.classes),
        }

    def prepare(self, files: dict[str, list[str]]) -> dict[str, list[str]]:
        files = self.readable(files)
        self.check_sizes(files)
        self.mean, self.std = self.normalisation(files["train"])
        return files

    def readable(self, files: dict[str, list[str]]) -> dict[str, list[str]]:
        """The files whose header PIL reads; the others stop the run, or are skipped
        and counted with ``skip_corrupt``."""
        raw = self.root / "raw"
        self.sizes: dict[str, tuple[int, int]] = {}
        kept = {}
        for name, listed in files.items():
            sizes, bad = image_sizes(raw, listed)
            if bad and not self.skip_corrupt:
                more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                raise UserInputError(
                    f"{raw / bad[0]}{more} is not an image PIL can read (corrupt, or another "
                    "kind of file). Replace or remove it, or set data.skip_corrupt=true to "
                    "skip unreadable files."
                )
            if bad:
                log.warning(f"Skipped {len(bad)} unreadable files of the {name} split: {bad[:5]}")
            self.sizes.update(sizes)
            kept[name] = [f for f in listed if f in sizes]
        return kept

    def check_sizes(self, files: dict[str, list[str]]) -> None:
        """Every image must come out of both pipelines at image_size x image_size."""
        by_size: dict[tuple[int, int], str] = {}
        for rel in files["train"] + files["val"] + files["test"]:
            by_size.setdefault(self.sizes[rel], rel)
        want = (self.channels, self.image_size, self.image_size)
        for width, height in list(by_size)[:4]:
            for which, transform in (
                ("train", self.train_transform),
                ("eval", self.eval_transform),
            ):
                dummy = torch.zeros(self.channels, height, width, dtype=torch.uint8)
                shape = tuple((transform(dummy) if transform else dummy).shape)
                if shape == want:
                    continue
                mixed = len(by_size) > 1
                sizes = ", ".join(f"{f} is {w}x{h}" for (w, h), f in list(by_size.items())[:3])
                raise UserInputError(
                    f"{'Images of mixed sizes' if mixed else 'The images'} ({sizes}) come out "
                    f"of the {which} transform as {shape[-1]}x{shape[-2]}, and "
                    f"data.image_size={self.image_size} asks for {want[2]}x{want[1]}. Use a "
                    "transform that resizes (data/transforms=default, light or strong) or set "
                    f"data.image_size to the images' size."
                )

    def normalisation(self, train: list[str]) -> tuple[list[float] | None, list[float] | None]:
        if self.normalize is None:
            return None, None
        if self.normalize != "auto":
            mean, std = list(self.normalize["mean"]), list(self.normalize["std"])
            if len(mean) != self.channels or len(std) != self.channels or min(std) <= 0:
                raise UserInputError(
                    f"data.normalize needs {self.channels} means and {self.channels} positive "
                    f"stds (one per channel), got mean={mean}, std={std}."
                )
            return mean, std
        name = split_names(self.num_folds, self.fold)[0]
        key = {
            "channels": self.channels,
            "size": self.image_size,
            "eval": repr(self.eval_transform),
        }
        path = stats_path(self.root / "splits", name, train, key)
        if path.is_file():
            stats = json.loads(path.read_text())
        else:
            log.info(f"Computing the mean/std of {len(train)} training images (once: {path})")
            dataset = self.image_dataset(train, self.eval_transform, None, None)
            stats = channel_stats(dataset, self.num_workers)
            partial = path.with_suffix(".partial")
            partial.write_text(json.dumps({**stats, "files": len(train), **key}, indent=2))
            partial.replace(path)
        return stats["mean"], stats["std"]

    def image_dataset(
        self, files: list[str], transform: Transform | None, mean: Any, std: Any, **kw: Any
    ) -> ImageFiles:
        labels = [self.label_of(f) for f in files]
        raw = self.root / "raw"
        return ImageFiles(raw, files, labels, self.channels, transform, mean, std, **kw)

    def shard_dataset(self, split: str) -> Dataset:
        """What ``src/tools/to_shards.py`` writes: the split's images through the eval
        pipeline (resized), kept uint8, so that ``data=streaming`` augments them per
        sample (``data/transforms=...``) and normalises with ``shard_meta``'s statistics."""
        self.setup()
        return self.image_dataset(self.files[split], self.eval_transform, None, None,
                                  keep_uint8=True)  # fmt: skip

    def shard_meta(self) -> dict[str, Any]:
        """What ``shards.json`` keeps for the reader: the samples are uint8 images, and the
        training split's mean/std (None: the source did not normalise)."""
        self.setup()
        return {"images": {"mean": self.mean, "std": self.std}}

    def make_dataset(self, split: str, files: list[str]) -> Dataset:
        transform = self.train_transform if split == "train" else self.eval_transform
        return self.image_dataset(files, transform, self.mean, self.std)
