"""The VIMH data set format: images with several labelled parameters each.

A data set is a directory holding the record files ``train`` and ``test`` and
``vimh_dataset_info.json``; docs/vimh_format.md describes every byte. One
record is, little-endian::

    uint16 height, width, channels | float32 spec_min_db, spec_max_db |
    uint8 P | P x (uint8 param_id, uint8 value) | height*width*channels uint8 pixels (C, H, W)

All records of a file have the same size, so a whole file is parsed with one
numpy structured dtype taken from the first header, and every other header is
checked against it with vectorised comparisons: no Python loop per record.
Anything inconsistent stops with a ``UserInputError`` naming the file and the
record. Reading never writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from src.utils.errors import UserInputError

INFO_FILE = "vimh_dataset_info.json"
SPLIT_FILES = ("train", "test")
FORMAT_VERSION = "1.0"
HEADER_BYTES = 15  # height, width, channels, spec_min_db, spec_max_db, P
REQUIRED_INFO = (
    "format",
    "version",
    "height",
    "width",
    "channels",
    "parameter_names",
    "parameter_mappings",
    "train_samples",
    "test_samples",
)


class Records(NamedTuple):
    """The content of one record file, as arrays."""

    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # uint8 (N, P); column i is parameter_names[i] (param_id i)
    levels: np.ndarray  # float32 (N, 2): spec_min_db, spec_max_db of each image


def record_dtype(num_labels: int, num_pixels: int) -> np.dtype:
    """The packed layout of one record."""
    return np.dtype(
        [
            ("height", "<u2"),
            ("width", "<u2"),
            ("channels", "<u2"),
            ("spec_min_db", "<f4"),
            ("spec_max_db", "<f4"),
            ("num_labels", "u1"),
            ("labels", "u1", (num_labels, 2)),
            ("pixels", "u1", (num_pixels,)),
        ]
    )


def encode_labels(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Label bytes of parameter values: ``floor(255 (x - min) / (max - min))``."""
    scaled = np.floor(255.0 * (np.asarray(values, dtype=np.float64) - low) / (high - low))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def dataset_name(
    height: int,
    width: int,
    channels: int,
    sample_rate: int,
    duration: float,
    size: int,
    synth: str,
    num_params: int,
    extra: tuple[str, ...] = (),
) -> str:
    """``vimh-32x32x1_8000Hz_1p0s_2000dss_simple_saw_2p``: what the directory holds (NSMT's
    scheme), then ``extra``, the settings that scheme leaves out where they are not at the
    values its names stand for (``src.vimh.plan.name_extras``: ``..._2p_seed1``)."""
    name = (
        f"vimh-{height}x{width}x{channels}_{sample_rate}Hz_{decimal(duration)}s_"
        f"{size}dss_{synth}_{num_params}p"
    )
    return "_".join((name, *extra))


def decimal(value: float) -> str:
    """A number for a directory name, ``p`` for its decimal point: 1.0 -> ``1p0``."""
    return str(float(value)).replace(".", "p")


def fill_records(rows: np.ndarray, records: Records) -> None:
    """Set every field of ``rows`` (as many records of ``record_dtype``) from ``records``;
    the label of column i gets ``param_id`` i."""
    images, labels, levels = records
    count, num_labels = labels.shape
    rows["channels"], rows["height"], rows["width"] = images.shape[1:]
    rows["spec_min_db"], rows["spec_max_db"] = levels[:, 0], levels[:, 1]
    rows["num_labels"] = num_labels
    rows["labels"][:, :, 0] = np.arange(num_labels)
    rows["labels"][:, :, 1] = labels
    rows["pixels"] = images.reshape(count, -1)


def write_records(path: str | Path, records: Records) -> None:
    """Write records (``fill_records``) to a new file."""
    images, labels, _ = records
    rows = np.zeros(
        len(labels), dtype=record_dtype(labels.shape[1], int(np.prod(images.shape[1:])))
    )
    fill_records(rows, records)
    rows.tofile(path)


def create_records(path: str | Path, count: int, dtype: np.dtype) -> None:
    """A new file of ``count`` zeroed records, to fill in place (``open_records``)."""
    with open(path, "xb") as file:
        file.truncate(count * dtype.itemsize)


def open_records(path: str | Path, dtype: np.dtype) -> np.memmap:
    """The records of a file made by ``create_records``, writable in place: processes that
    open it each fill their own records (``fill_records``), straight into the file."""
    return np.memmap(path, dtype=dtype, mode="r+")


def _first_bad(ok: np.ndarray) -> int | None:
    """Index of the first False in a per-record check, or None if all pass."""
    return None if ok.all() else int(np.argmin(ok))


def _rows(path: Path) -> np.ndarray:
    """The file's records as a structured array, every header checked against record 0's
    and the file against a whole number of records."""
    if not path.is_file():
        raise UserInputError(f"{path} is missing: a VIMH data set needs its train and test files.")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size < HEADER_BYTES:
        raise UserInputError(
            f"{path}: record 0 is truncated ({data.size} bytes, less than a "
            f"{HEADER_BYTES}-byte header). Generate the data set again."
        )
    height, width, channels = (int(v) for v in data[:6].view("<u2"))
    num_labels = int(data[14])
    if not 0 < height * width * channels <= data.size - HEADER_BYTES:
        raise UserInputError(
            f"{path}: record 0's header says {height}x{width}x{channels} pixels, which "
            f"{'is empty' if not height * width * channels else 'do not fit in the file'} "
            f"({data.size:,} bytes): it is not a VIMH record file, or it is corrupt. "
            "Generate the data set again."
        )
    dtype = record_dtype(num_labels, height * width * channels)
    count = data.size // dtype.itemsize
    rows = data[: count * dtype.itemsize].view(dtype)
    first = f"{height}x{width}x{channels} with {num_labels} labels"
    same = (
        (rows["height"] == height)
        & (rows["width"] == width)
        & (rows["channels"] == channels)
        & (rows["num_labels"] == num_labels)
    )
    bad = _first_bad(same)
    if bad is not None:
        row = rows[bad]
        raise UserInputError(
            f"{path}: record {bad} has an inconsistent header "
            f"({row['height']}x{row['width']}x{row['channels']} with {row['num_labels']} "
            f"labels, but record 0 is {first}). The file is corrupt."
        )
    if data.size % dtype.itemsize:
        raise UserInputError(
            f"{path}: record {count} is truncated (the file ends "
            f"{data.size % dtype.itemsize} bytes into it; records are {dtype.itemsize} bytes). "
            "Generate the data set again."
        )
    return rows


def _check_label_ids(path: Path, ids: np.ndarray, num_params: int) -> None:
    """Each record's labels (param_ids ``ids``, one row a record) name each of the
    ``num_params`` parameters once."""
    if ids.shape[1] != num_params:
        raise UserInputError(
            f"{path}: record 0 has {ids.shape[1]} labels but {INFO_FILE} names {num_params} "
            "parameters: the JSON and the binary disagree."
        )
    bad = _first_bad((ids < num_params).all(axis=1))
    if bad is not None:
        raise UserInputError(
            f"{path}: record {bad} has a label out of range: param_id "
            f"{int(ids[bad].max())}, but {INFO_FILE} names only {num_params} parameters."
        )
    bad = _first_bad((np.sort(ids, axis=1) == np.arange(num_params)).all(axis=1))
    if bad is not None:
        raise UserInputError(
            f"{path}: record {bad} labels parameters {ids[bad].tolist()}; each param_id "
            f"0..{num_params - 1} must appear once."
        )


def read_records(path: str | Path, num_params: int) -> Records:
    """Parse a record file whose labels must name each of ``num_params`` parameters once."""
    path = Path(path)
    rows = _rows(path)
    levels = np.stack([rows["spec_min_db"], rows["spec_max_db"]], axis=1).astype(np.float32)
    bad = _first_bad(np.isfinite(levels).all(axis=1) & (levels[:, 0] <= levels[:, 1]))
    if bad is not None:
        raise UserInputError(
            f"{path}: record {bad} has an inconsistent header "
            f"(spec_min_db={levels[bad, 0]}, spec_max_db={levels[bad, 1]}). The file is corrupt."
        )
    ids = rows["labels"][:, :, 0]
    _check_label_ids(path, ids, num_params)
    order = np.argsort(ids, axis=1, kind="stable")
    labels = np.take_along_axis(rows["labels"][:, :, 1], order, axis=1)
    shape = (int(rows["channels"][0]), int(rows["height"][0]), int(rows["width"][0]))
    images = np.ascontiguousarray(rows["pixels"]).reshape(len(rows), *shape)
    return Records(images, labels, levels)


def read_info(directory: str | Path) -> dict[str, Any]:
    """The data set's JSON, checked for the keys and mappings the records rely on."""
    path = Path(directory) / INFO_FILE
    if not path.is_file():
        raise UserInputError(f"{path} is missing: {directory} is not a VIMH data set.")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserInputError(f"{path} is not valid JSON ({error}).") from error
    missing = [key for key in REQUIRED_INFO if key not in info]
    if missing:
        raise UserInputError(f"{path} lacks the keys {missing}.")
    if info["format"] != "VIMH":
        raise UserInputError(f"{path} says format={info['format']!r}, not 'VIMH'.")
    for name in info["parameter_names"]:
        mapping = info["parameter_mappings"].get(name)
        if mapping is None or not mapping.get("min", 0) < mapping.get("max", 0):
            raise UserInputError(
                f"{path}: parameter {name!r} needs a mapping with min < max in "
                f"parameter_mappings, got {mapping}."
            )
    return info


def read_dataset(directory: str | Path) -> tuple[dict[str, Any], dict[str, Records]]:
    """The JSON and both record files of a data set, checked against each other."""
    info = read_info(directory)
    info_path = Path(directory) / INFO_FILE
    shape = (info["channels"], info["height"], info["width"])
    splits = {}
    for split in SPLIT_FILES:
        path = Path(directory) / split
        records = read_records(path, len(info["parameter_names"]))
        found = records.images.shape[1:]
        if found != shape:
            raise UserInputError(
                f"{path}: record 0 is {found[1]}x{found[2]}x{found[0]} (HxWxC) but {info_path} "
                f"says {shape[1]}x{shape[2]}x{shape[0]}: the JSON and the binary disagree."
            )
        expected = info[f"{split}_samples"]
        if len(records.images) != expected:
            raise UserInputError(
                f"{path} holds {len(records.images)} records (0..{len(records.images) - 1}) "
                f"but {info_path} says {split}_samples={expected}: the JSON and the binary "
                "disagree."
            )
        splits[split] = records
    return info, splits


def write_dataset(directory: str | Path, info: dict[str, Any], splits: dict[str, Records]) -> None:
    """Write both record files and the JSON into an existing, empty directory."""
    for split in SPLIT_FILES:
        write_records(Path(directory) / split, splits[split])
    write_info(directory, info)


def write_info(directory: str | Path, info: dict[str, Any]) -> None:
    """Write the data set's JSON."""
    (Path(directory) / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
