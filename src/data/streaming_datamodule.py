"""Train from streaming shards (litdata): ``data=streaming data.input_dir=<shard folder>``.

The shards are written once by ``src/tools/to_shards.py`` from any of the template's
data modules (``components.shards``); they hold the samples that module serves, so
the model, its metrics and the batches' layout are those of the source module, and
``spec`` (what ``${data_spec:...}`` answers) is the source's, read from
``shards.json``.

Each split is a ``litdata.StreamingDataset`` read by a ``StreamingDataLoader`` in
``num_workers`` worker processes: chunks are read (or downloaded, from object
storage) a few at a time, so memory holds the chunks in flight, not the data set.
``input_dir`` is a local folder or an object-storage URL (``s3://bucket/shards``,
``gs://...``): litdata reads both the same way, downloading remote chunks into
``cache_dir``.

Shards of an image folder hold its images as uint8 (resized by its eval pipeline) and
its training split's mean/std: each sample is augmented in the workers by
``data/transforms=default|light|strong`` (the train pipeline for training, the eval
one for val and test, as in ``data=image_folder``), then scaled and normalised.

Resumable mid-epoch: the train loader's ``state_dict`` (the epoch and the samples it
has yielded) is saved by Lightning's fit loop in every checkpoint
(``loops.fit_loop.state_dict.combined_loader``) and given back on resume, so the
resumed epoch goes on with the samples the interrupted one had not reached.

litdata is imported in ``setup``, when shards are read: start-up stays fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from lightning import LightningDataModule

from src.data.components.batch_count import check_batch_count
from src.data.components.shards import SPLITS, ShardImages, is_remote, read_meta, split_dir
from src.utils.errors import UserInputError


class StreamingDataModule(LightningDataModule):
    """The train/val/test shards of ``input_dir`` as streaming loaders.

    Args:
        input_dir: the shard folder (local path or object-storage URL).
        batch_size: samples per batch (per process under DDP).
        shuffle_seed: seed of the train split's per-epoch shuffle (litdata shuffles
            chunks, then samples within a window); ``None`` takes the run's seed.
        drop_last: leave out an incomplete last training batch.
        num_workers: loader worker processes that read (and download) chunks.
        pin_memory: pinned batches for fast copies to a GPU.
        persistent_workers: keep the workers between epochs (when there are any).
        cache_dir: where remote chunks are downloaded (``None``: litdata's default).
        max_cache_size: the most bytes of downloaded chunks kept (litdata's setting).
        storage_options: credentials and options of the object store (litdata's).
        image_size: what the transforms' ``${data.image_size}`` is: the shards' image size.
        transforms: ``{"train": pipeline, "eval": pipeline}`` of uint8 (C, H, W) tensors
            for image shards (``configs/data/transforms/``); ``None``: the samples as stored.
        normalize: image shards only: ``"auto"`` (the source's mean/std, from
            ``shards.json``), ``{"mean": [...], "std": [...]}``, or ``None`` (0..1).
    """

    def __init__(
        self,
        input_dir: str,
        batch_size: int = 64,
        shuffle_seed: int | None = None,
        drop_last: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        cache_dir: str | None = None,
        max_cache_size: str = "100GB",
        storage_options: dict[str, Any] | None = None,
        image_size: int | None = None,
        transforms: Mapping[str, Any] | None = None,
        normalize: str | Mapping[str, Sequence[float]] | None = "auto",
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise UserInputError(f"data.batch_size must be at least 1, got {batch_size}.")
        self.input_dir = str(input_dir)
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.drop_last = drop_last
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.cache_dir = cache_dir
        self.max_cache_size = max_cache_size
        self.storage_options = dict(storage_options or {})
        self.image_size = image_size
        self.transforms = dict(transforms or {})
        unknown = sorted(set(self.transforms) - {"train", "eval"})
        if unknown:
            raise UserInputError(f"data.transforms has keys {unknown}; it takes train and eval.")
        if isinstance(normalize, str) and normalize != "auto":
            raise UserInputError(
                f"data.normalize={normalize!r}: use auto, null, or {{mean: [...], std: [...]}}."
            )
        self.normalize = normalize
        self.datasets: dict[str, Any] = {}
        self._meta: dict[str, Any] | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """The shard folder's ``shards.json`` (read once)."""
        if self._meta is None:
            self._meta = read_meta(self.input_dir, self.storage_options)
        return self._meta

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.meta["spec"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes") or [])

    def class_names(self, head: str = "") -> list[str] | None:
        """The source's class names where its shards record them, else None
        (``InMemoryDataModule.class_names``)."""
        return self.classes or None

    @property
    def source(self) -> str:
        return f"the shards of {self.meta.get('source', 'a data module')} in {self.input_dir}"

    def split_record(self) -> dict[str, Any]:
        """What the run trained on (``<run>/splits.json``): the shard folder and its sizes;
        the samples of each split are the source's (see its settings)."""
        return {
            "indices_into": f"the shards of {self.input_dir} (each split in its own folder)",
            "input_dir": self.input_dir,
            "sizes": dict(self.meta["sizes"]),
            "source_settings": self.meta["settings"],
        }

    def sample_step(self, split: str) -> ShardImages | None:
        """The per-sample transform of ``split`` (None: the samples as stored)."""
        images = self.meta.get("images")
        if images is None:
            if self.transforms:
                raise UserInputError(
                    f"data.transforms apply to shards of image folders (uint8 images); "
                    f"{self.source} holds ready samples. Leave data/transforms out."
                )
            return None
        pipeline = self.transforms.get("train" if split == "train" else "eval")
        if self.normalize == "auto":
            mean, std = images["mean"], images["std"]
        elif self.normalize is None:
            mean = std = None
        else:
            mean, std = list(self.normalize["mean"]), list(self.normalize["std"])
        return ShardImages(pipeline, mean, std)

    def check_transforms(self) -> None:
        """Each pipeline must leave the shards' images at the size the model takes."""
        import torch

        shape = tuple(self.meta["spec"]["input_shape"])
        if (
            self.image_size is not None
            and self.image_size != shape[-1]
            and not any(self.transforms.values())
        ):  # no transform to resize: data.image_size would say a size nothing makes
            raise UserInputError(
                f"data.image_size={self.image_size}, but the shards hold {shape[-1]}x{shape[-2]} "
                f"images and no data/transforms resize them: set data.image_size={shape[-1]}, "
                "or resize with data/transforms=default (or light, strong)."
            )
        for which, pipeline in self.transforms.items():
            if pipeline is None:
                continue
            out = tuple(pipeline(torch.zeros(shape, dtype=torch.uint8)).shape)
            if out != shape:
                raise UserInputError(
                    f"The {which} transform turns the shards' {shape[-1]}x{shape[-2]} images "
                    f"into {out[-1]}x{out[-2]} (data.image_size={self.image_size}), and the "
                    f"model takes the shards' size: set data.image_size={shape[-1]}."
                )

    def _dataset(self, split: str, shuffle: bool) -> Any:
        from litdata import StreamingDataset

        seed = self.shuffle_seed
        if seed is None:
            import torch

            seed = int(torch.initial_seed()) % 2**31
        extra: dict[str, Any] = {"cache_dir": self.cache_dir} if is_remote(self.input_dir) else {}
        step = self.sample_step(split)
        if step is not None:  # run by litdata on each item it reads (in the workers)
            extra["transform"] = step
        return StreamingDataset(
            split_dir(self.input_dir, split), shuffle=shuffle, seed=seed,
            drop_last=self.drop_last if shuffle else None, max_cache_size=self.max_cache_size,
            storage_options=self.storage_options, **extra,
        )  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.meta  # noqa: B018  (a wrong input_dir stops here with one message)
        if self.meta.get("images") is not None:
            self.check_transforms()
        self.datasets = {s: self._dataset(s, shuffle=s == "train") for s in SPLITS}

    @property
    def data_train(self) -> Any:
        return self.datasets.get("train")

    @property
    def data_val(self) -> Any:
        return self.datasets.get("val")

    @property
    def data_test(self) -> Any:
        return self.datasets.get("test")

    def loader(self, split: str) -> Any:
        from litdata import StreamingDataLoader

        self.setup()
        drop_last = self.drop_last and split == "train"
        size = int(self.meta["sizes"][split])
        check_batch_count(self.trainer, split, size, self.batch_size, drop_last, self.source)
        # Lightning warns that an IterableDataset's __len__ may be wrong across workers;
        # litdata's is exact: it shares the split's samples out among ranks and workers
        warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")
        return StreamingDataLoader(
            self.datasets[split], batch_size=self.batch_size, num_workers=self.num_workers,
            pin_memory=self.pin_memory, persistent_workers=self.persistent_workers,
            drop_last=drop_last,
        )  # fmt: skip

    def train_dataloader(self) -> Any:
        return self.loader("train")

    def val_dataloader(self) -> Any:
        return self.loader("val")

    def test_dataloader(self) -> Any:
        return self.loader("test")
