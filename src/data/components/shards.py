"""Streaming shards: what ``src/tools/to_shards.py`` writes and ``data=streaming`` reads.

A shard folder holds one litdata data set per split (``<dir>/train``, ``<dir>/val``,
``<dir>/test``: chunked ``chunk-*.bin`` files and litdata's ``index.json``) and
``<dir>/shards.json``, written last: the settings of the conversion (what identifies
it: the source's data config and the chunking), and what a model needs to know about
the data (the source module's ``spec``, its class names, each split's size).

litdata itself is imported only where shards are written or read (not here), so that
an entry point that never streams does not pay for it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from src.utils.errors import UserInputError

META_FILE = "shards.json"
SPLITS = ("train", "val", "test")

# URL schemes litdata streams from (object storage); anything else is a local folder
REMOTE_SCHEMES = ("s3://", "gs://", "azure://", "hf://", "r2://", "lightning_storage://")


def is_remote(input_dir: str) -> bool:
    return str(input_dir).startswith(REMOTE_SCHEMES)


def split_dir(input_dir: str, split: str) -> str:
    """Where a split's litdata data set is (a local path or a URL)."""
    return f"{str(input_dir).rstrip('/')}/{split}"


def read_meta(input_dir: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``shards.json`` of a shard folder (downloaded first from object storage)."""
    fix = (
        "Point data.input_dir at a folder written by src/tools/to_shards.py "
        "(make shards DATA=<data option> OUT=<folder>)."
    )
    if is_remote(input_dir):
        return _read_remote_meta(input_dir, storage_options or {}, fix)
    folder = Path(input_dir)
    meta = folder / META_FILE
    if not folder.is_dir():
        raise UserInputError(f"data.input_dir={input_dir} does not exist. {fix}")
    if not meta.is_file():
        raise UserInputError(
            f"data.input_dir={input_dir} has no {META_FILE}: it is not a shard folder, or its "
            f"conversion did not finish. {fix}"
        )
    return _parse(meta.read_text(), meta, fix)


def _read_remote_meta(url: str, storage_options: dict[str, Any], fix: str) -> dict[str, Any]:
    from litdata.streaming.fs_provider import _get_fs_provider

    remote = split_dir(url, META_FILE)
    provider = _get_fs_provider(remote, storage_options)
    if not provider.exists(remote):
        raise UserInputError(f"{remote} does not exist (or cannot be reached). {fix}")
    with tempfile.TemporaryDirectory() as local:
        path = Path(local) / META_FILE
        provider.download_file(remote, str(path))
        return _parse(path.read_text(), remote, fix)


def _parse(text: str, where: Any, fix: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserInputError(f"{where} is not valid JSON ({error}). {fix}") from error
    missing = [key for key in ("settings", "spec", "sizes") if key not in meta]
    if missing:
        raise UserInputError(f"{where} lacks {', '.join(missing)}. {fix}")
    return meta


class ShardImages:
    """The per-sample step of image shards (``shards.json`` has ``images``): a sample
    ``(x uint8 (C, S, S), label)`` goes through ``pipeline`` (a ``transforms.v2``
    pipeline, or None), then to float 0..1 and ``(x - mean) / std``; run by litdata's
    ``StreamingDataset`` on each item it reads, so in the loader's workers."""

    def __init__(self, pipeline: Any, mean: Any, std: Any) -> None:
        import torch

        self.pipeline = pipeline
        self.mean = None if mean is None else torch.tensor(mean).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(-1, 1, 1)

    def __call__(self, item: Any) -> Any:
        from src.data.components.image_files import to_input

        x, *rest = item
        if self.pipeline is not None:
            x = self.pipeline(x)
        return (to_input(x, self.mean, self.std), *rest)
