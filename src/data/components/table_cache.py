"""Tables larger than memory (``data=tabular data.in_memory=false``): a float32 cache read in place.

The table (one file, or the train, val and test files in turn) is read once in parts
of ``CHUNK_ROWS`` rows, checked as the in-memory path checks it (columns, numbers,
NaN: the same messages, with the file's row numbers), and written as one float32
matrix, the feature columns then the targets, one row per sample
(``<cache_dir>/<stem>-<key>.f32``), with a JSON that describes it, written last: a
cache is whole or absent. The key hashes the files (path, size, modification time)
and the settings that change the rows (columns, split column, ``drop_na``), so the
same file and settings reuse the cache, and a changed file or other settings make
another one. The cache lives under the project's data folder, never beside the
user's file.

Batches are cut by index from a numpy memmap opened for each batch and dropped after
it (``vimh/memmap_records`` says why), and standardised with the statistics of the
training rows, computed part by part in float64 (Chan's merge of means and squared
deviations), so memory holds a part of the table, never all of it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from src.data.components.memmap_loader import tune_worker_malloc
from src.data.components.splits import SPLITS, Split, numbered_in_turn, random_split
from src.data.components.tables import iter_table, numeric_columns, read_table_checks
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)

CHUNK_ROWS = 65_536  # rows read, checked and written at once
VERSION = 1  # of the cache's layout: part of the key
# what split indices count when data.drop_na has left rows out (as in tabular_datamodule)
DROPPED = " (counting only the rows data.drop_na kept)"


class TableCache:
    """A written cache: ``rows`` x (features + targets) float32, and each row's split
    code (0 train, 1 val, 2 test) when the table has a split column."""

    def __init__(self, base: Path, meta: dict[str, Any]) -> None:
        self.base, self.meta = base, meta
        self.rows = int(meta["rows"])
        self.features, self.targets = list(meta["features"]), list(meta["targets"])
        self.width = len(self.features) + len(self.targets)

    def matrix(self) -> np.memmap:
        shape = (self.rows, self.width)
        return np.memmap(self.base.with_suffix(".f32"), dtype=np.float32, mode="r", shape=shape)

    def split_codes(self) -> np.ndarray:
        return np.fromfile(self.base.with_suffix(".split"), dtype=np.uint8)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The cached values of ``rows``, through a fresh memmap (dropped after)."""
        mapped = self.matrix()
        values = np.asarray(mapped[rows])
        del mapped
        return values

    def moments(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-column mean and unbiased std (float32) of ``rows``, merged part by part."""
        rows = np.sort(rows)
        count, mean, squares = 0, np.zeros(self.width), np.zeros(self.width)
        for start in range(0, len(rows), CHUNK_ROWS):
            part = self.read(rows[start : start + CHUNK_ROWS]).astype(np.float64)
            n, part_mean = len(part), part.mean(axis=0)
            delta = part_mean - mean
            squares += ((part - part_mean) ** 2).sum(axis=0) + delta**2 * count * n / (count + n)
            mean += delta * n / (count + n)
            count += n
        std = np.sqrt(squares / max(count - 1, 1))
        return torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def cache_base(dm: Any, files: dict[str, Path]) -> Path:
    """``<cache_dir>/<stem>-<key>``: the key hashes the files and the row settings."""
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files.values()]
    settings = [VERSION, stamp, dm.feature_columns, dm.targets, dm.split_column, dm.drop_na]
    key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]
    return Path(dm.cache_dir) / f"{next(iter(files.values())).stem}-{key}"


def table_cache(dm: Any) -> TableCache:
    """The cache of ``dm``'s table (``dm.paths``), written on first use."""
    names = ["all"] if "all" in dm.paths else list(SPLITS)  # one file, or train, val, test in turn
    files = {name: Path(dm.paths[name]) for name in names}
    for path in files.values():
        read_table_checks(path)  # the in-memory path's messages: missing file, format
    base = cache_base(dm, files)
    meta_path = base.with_suffix(".json")
    if not meta_path.is_file():
        write_cache(dm, files, base)
    cache = TableCache(base, json.loads(meta_path.read_text()))
    dm.features = cache.features
    return cache


def write_cache(dm: Any, files: dict[str, Path], base: Path) -> None:
    base.parent.mkdir(parents=True, exist_ok=True)
    partial = {s: base.with_name(f".{base.name}.{os.getpid()}{s}") for s in (".f32", ".split")}
    counts: dict[str, int] = {}
    try:
        with open(partial[".f32"], "wb") as values, open(partial[".split"], "wb") as codes:
            for name, path in files.items():
                counts[name] = write_rows(dm, path, values, codes)
                if counts[name] == 0 and name != "all":
                    raise UserInputError(f"Data file {path} ({name} split) has no rows.")
        meta = {"rows": sum(counts.values()), "counts": counts, "features": dm.features,
                "targets": dm.targets, "files": {n: str(p) for n, p in files.items()}}  # fmt: skip
        for suffix, path in partial.items():
            os.replace(path, base.with_suffix(suffix))
        meta_file = base.with_name(f".{base.name}.{os.getpid()}.json")
        meta_file.write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(meta_file, base.with_suffix(".json"))  # last: the cache is whole
    finally:
        for path in partial.values():
            path.unlink(missing_ok=True)
    log.info(f"Cached {meta['rows']} rows of {', '.join(map(str, files.values()))} in {base}.f32")


def write_rows(dm: Any, path: Path, values: Any, codes: Any) -> int:
    """Append the checked rows of ``path`` (and their split codes); return how many."""
    first = kept = 0
    for frame in iter_table(path, CHUNK_ROWS):
        features = dm.table_columns(frame, path)
        numbers = numeric_columns(frame, features + dm.targets, f"Data file {path}",
                                  dm.drop_na, first_row=first)  # fmt: skip
        values.write(numbers[features + dm.targets].to_numpy(np.float32).tobytes())
        if dm.split_column:
            labels = frame.loc[numbers.index, dm.split_column].astype(str).to_numpy()
            unknown = sorted(set(labels) - set(SPLITS))
            if unknown:
                raise UserInputError(
                    f"Column '{dm.split_column}' of {path} holds {unknown[:5]}: each row's "
                    f"split must be one of {', '.join(SPLITS)}."
                )
            code = {name: i for i, name in enumerate(SPLITS)}
            codes.write(np.fromiter((code[v] for v in labels), np.uint8, len(labels)).tobytes())
        first, kept = first + len(frame), kept + len(numbers)
    if first > kept:
        log.warning(f"data.drop_na=true: left out {first - kept} rows of {path} "
                    "with NaN or infinite values.")  # fmt: skip
    return kept


class TableRows(Dataset):
    """Rows of a ``TableCache`` as regression samples ``(x, y)``, standardised as the
    in-memory path standardises them; ``__getitems__`` reads a whole batch."""

    def __init__(self, cache: TableCache, rows: np.ndarray, scaling: dict[str, Any]) -> None:
        self.cache, self.rows = cache, np.asarray(rows, dtype=np.int64)
        self.num_features = len(cache.features)
        self.mean = scaling["feature_mean"].view(1, -1)
        self.std = scaling["feature_std"].view(1, -1)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(
        self, indices: slice | torch.Tensor | Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tune_worker_malloc()
        rows = self.rows[indices] if isinstance(indices, slice) else self.rows[np.asarray(indices)]
        values = torch.from_numpy(self.cache.read(rows))
        x = ((values[:, : self.num_features] - self.mean) / self.std).contiguous()
        return x, values[:, self.num_features :].contiguous()


def memmap_splits(dm: Any) -> tuple[dict[str, TableRows], dict[str, torch.Tensor], str]:
    """The train/val/test splits of a ``TabularDataModule`` with ``in_memory=False``: the
    rows the in-memory path would put in each (random cut, split column, one file per
    split, folds) as ``TableRows``, with each split's indices and what they index."""
    dm.check_settings()
    folds = dm.cross_validating()  # before reading: a wrong setting stops at once
    cache = table_cache(dm)
    size, dropped = cache.rows, (DROPPED if dm.drop_na else "")
    ids, blank = torch.arange(size), torch.zeros(size, 1)  # rows, and labels that do not stratify
    if "all" not in dm.paths:
        counts = [int(cache.meta["counts"][name]) for name in SPLITS]
        pairs = zip(ids.split(counts), blank.split(counts), strict=True)
        parts = dict(zip(SPLITS, pairs, strict=True))
        files = ", ".join(str(dm.paths[name]) for name in SPLITS)
        split = numbered_in_turn(parts, f"the rows of {files}, one file after another{dropped}")
    elif dm.split_column:
        codes, path = torch.from_numpy(cache.split_codes()).long(), dm.paths["all"]
        counts = {name: int((codes == i).sum()) for i, name in enumerate(SPLITS)}
        if min(counts.values()) == 0:
            raise UserInputError(
                f"Column '{dm.split_column}' of {path} gives the splits {counts} rows: "
                "every split needs at least one row."
            )
        indices = {name: ids[codes == i] for i, name in enumerate(SPLITS)}
        parts = {name: (index, blank[index]) for name, index in indices.items()}
        split = Split(parts, indices, f"the {size} rows of {path}, in file order{dropped}")
    else:
        indexed = f"the {size} samples of {dm.source}, in the order they are read{dropped}"
        split = random_split(ids, blank, dm.split_sizes(size), dm.split_seed, indexed)
    if folds:
        split = dm.fold_splits(split)
    rows = {name: part[0].numpy() for name, part in split.parts.items()}
    if dm.scaling:  # restored from a checkpoint: it must describe these data
        dm._check_restored_names()
    else:
        dm.scaling = scaling_of(cache, rows["train"])
    datasets = {name: TableRows(cache, r, dm.scaling) for name, r in rows.items()}
    return datasets, split.indices, split.indexed


def scaling_of(cache: TableCache, train: np.ndarray) -> dict[str, Any]:
    """``RegressionDataModule``'s standardisation, fitted to the training rows."""
    mean, std = cache.moments(train)
    f = len(cache.features)
    return {
        "feature_names": list(cache.features),
        "target_names": list(cache.targets),
        "input_shape": [f],
        "feature_mean": mean[:f],
        "feature_std": std[:f].clamp_min(1e-8),
        "target_mean": mean[f:],
        "target_std": std[f:].clamp_min(1e-8),
    }
