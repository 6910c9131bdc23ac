"""Convert a data module's splits into streaming shards (litdata), for ``data=streaming``:
``python src/tools/to_shards.py data=digits output_dir=data/shards/digits``.

Each split (train, val, test, as the data module serves them: the same split,
normalisation and, for folders, decoding) becomes a litdata data set of chunked
files under ``<output_dir>/<split>``, written by ``litdata.optimize`` (the training
split in a random order of ``train_order_seed``: litdata shuffles only within windows
of a chunk, and a folder's files come class by class); then
``<output_dir>/shards.json`` (``components.shards``). The output is written beside
``output_dir`` and renamed into place when complete, so a folder is a whole
conversion or nothing. An existing ``output_dir`` is never changed: the same
settings again do nothing, other settings stop with what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import rootutils
from omegaconf import DictConfig, OmegaConf

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.data.components.shards import META_FILE, SPLITS, is_remote  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402

# data config keys that change how batches are served, not what the samples are
LOADER_KEYS = {
    "batch_size", "num_workers", "pin_memory", "persistent_workers", "shuffle_seed", "drop_last",
}  # fmt: skip
BATCH = 256  # samples one optimize input reads at once (one __getitems__ of in-memory data)


def conversion_settings(cfg: DictConfig) -> dict[str, Any]:
    """What identifies a conversion: the data config (loader keys left out) and the chunking."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data = {key: value for key, value in data.items() if key not in LOADER_KEYS}
    settings = {"data": data, "chunk_bytes": cfg.chunk_bytes, "compression": cfg.compression,
                "train_order_seed": cfg.train_order_seed}  # fmt: skip
    return json.loads(json.dumps(settings))  # as shards.json holds it (tuples as lists)


def check_output(out: Path, settings: dict[str, Any]) -> bool:
    """Whether ``out`` already holds this conversion (True); stop if it holds anything else."""
    if not out.exists():
        return False
    meta = out / META_FILE
    if not meta.is_file():
        raise UserInputError(
            f"output_dir={out} exists and is not a shard folder (it has no {META_FILE}); it is "
            "left as it is. Choose another output_dir."
        )
    saved = json.loads(meta.read_text())["settings"]
    if saved == settings:
        return True
    differ = sorted(
        {f"data.{k}" for k in set(saved["data"]) | set(settings["data"])
         if saved["data"].get(k) != settings["data"].get(k)}
        | {k for k in ("chunk_bytes", "compression", "train_order_seed")
           if saved.get(k) != settings.get(k)}
    )  # fmt: skip
    raise UserInputError(
        f"output_dir={out} holds shards converted with other settings (they differ in "
        f"{', '.join(differ)}); it is left as it is. Choose another output_dir for these "
        f"settings, or delete {out} to convert again."
    )


def shard_dataset(datamodule: Any, split: str) -> Any:
    """What a split's shards hold: the data module's own choice (``shard_dataset``: the
    folder modules decode every split as for evaluation), else its ``data_<split>``."""
    if hasattr(datamodule, "shard_dataset"):
        return datamodule.shard_dataset(split)
    return getattr(datamodule, f"data_{split}")


class Samples:
    """``optimize``'s function: the samples at positions ``start..stop`` of ``order`` (None:
    the data set's own order), one by one (a whole range at once where the data set cuts
    batches, ``__getitems__``)."""

    def __init__(self, dataset: Any, order: list[int] | None = None) -> None:
        self.dataset, self.order = dataset, order

    def __call__(self, part: tuple[int, int]) -> Any:
        start, stop = part
        indices = range(start, stop) if self.order is None else self.order[start:stop]
        if hasattr(self.dataset, "__getitems__"):
            batch = self.dataset.__getitems__(slice(start, stop) if self.order is None else indices)
            for i in range(stop - start):
                yield tuple(t[i].clone() for t in batch)
            return
        for i in indices:
            yield tuple(self.dataset[i])


def sample_order(size: int, seed: int | None) -> list[int] | None:
    """The data set indices in the order they are written: a random permutation of
    ``seed``, or None (the data set's own order)."""
    import torch

    if seed is None:
        return None
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()


def write_split(dataset: Any, folder: Path, cfg: DictConfig, seed: int | None = None) -> int:
    """Write ``dataset`` as litdata chunks into ``folder``, in a random order of ``seed``
    (None: the data set's order)."""
    import logging

    import litdata

    logging.getLogger("litdata").setLevel(logging.WARNING)  # its cache-size notes at INFO

    size = len(dataset)
    if size == 0:
        raise UserInputError(f"The {folder.name} split is empty: there is nothing to convert.")
    parts = [(start, min(start + BATCH, size)) for start in range(0, size, BATCH)]
    order = sample_order(size, seed)
    # litdata's data processor sets a SIGINT handler that ends the process with os._exit(0)
    # and never puts the old one back: a later Ctrl-C in this process (a notebook, a test,
    # a training run) would exit silently with status 0 instead of stopping cleanly
    sigint = signal.getsignal(signal.SIGINT)
    try:
        litdata.optimize(
            fn=Samples(dataset, order), inputs=parts, output_dir=str(folder), chunk_bytes=cfg.chunk_bytes,
            compression=cfg.compression, num_workers=int(cfg.num_workers), start_method="fork",
            reorder_files=False, keep_data_ordered=True, verbose=False,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, sigint)
    return size


def train_seed(cfg: DictConfig, split: str) -> int | None:
    """The seed of the order the split is written in: the training split's is shuffled
    (``train_order_seed``), since litdata shuffles only within windows of a chunk (256
    samples) and a folder's files come class by class; val and test keep their order."""
    return cfg.train_order_seed if split == "train" else None


def convert(cfg: DictConfig) -> Path:
    """Write the shards of ``cfg.data`` into ``cfg.output_dir`` (see the module docstring)."""
    import hydra

    if cfg.get("output_dir") in (None, "", "???"):
        raise UserInputError(
            "output_dir is not set: give the shard folder to write, e.g. "
            "output_dir=data/shards/digits (make shards DATA=digits OUT=data/shards/digits)."
        )
    if is_remote(str(cfg.output_dir)):
        raise UserInputError(
            f"output_dir={cfg.output_dir} is object storage: shards are written to a local "
            "folder here; convert locally, then copy the folder there with your storage's tool."
        )
    out = Path(str(cfg.output_dir)).absolute()
    settings = conversion_settings(cfg)
    if check_output(out, settings):
        print(f"Unchanged (same settings): {out}")
        return out
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        sizes = {
            s: write_split(shard_dataset(datamodule, s), partial / s, cfg, train_seed(cfg, s))
            for s in SPLITS
        }
        meta = {
            "settings": settings,
            "spec": json.loads(json.dumps(datamodule.spec)),  # tuples as lists
            "classes": list(getattr(datamodule, "classes", None) or []),
            "sizes": sizes,
            "source": type(datamodule).__name__,
            # what the reader needs besides (image shards: uint8, and the source's mean/std)
            **(datamodule.shard_meta() if hasattr(datamodule, "shard_meta") else {}),
        }
        (partial / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # only left behind by a failed conversion
    print(f"Wrote {out}: " + ", ".join(f"{n} {c}" for n, c in sizes.items()) + " samples")
    return out


@entry_point("to_shards.yaml")
def main(cfg: DictConfig) -> None:
    convert(cfg)


if __name__ == "__main__":
    main()
