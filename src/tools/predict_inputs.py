"""What ``predict.py`` reads for classification and multihead runs, turned into the
net's inputs exactly as the run's data module turns its own samples into them.

- arrays (digits, MNIST, any in-memory data set): a ``.npy`` file of shape
  ``(N, *input_shape)`` (or ``(N, prod(input_shape))``), or a CSV of one flattened
  sample per row (a header row is allowed), in the data set's raw units (digits
  0..16, MNIST bytes 0..255); the data module's ``from_raw`` then ``normalise``;
- image files (an image-folder run): a folder (every image under it, sorted), one
  image file or a list of them; read, passed through the run's eval transform and
  normalised with its per-channel mean/std;
- WAV files (an audio-folder run), given as image files are: resampled, cut to the run's
  duration, turned into its spectrogram and standardised with its training statistics;
- a VIMH record file (a multihead VIMH run): its images, levels and labels.

The normalisation is the run's: the data module is set up on its training split
(in-memory data sets and image folders keep no statistics in the checkpoint), so
the run's data must be at hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.components.file_samples import Unreadable
from src.data.components.folder_splits import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from src.utils.errors import UserInputError


def as_paths(given: Any) -> list[Path]:
    """The input as paths: one path, or each of a list; every one must exist."""
    items = [given] if isinstance(given, (str, Path)) else list(given)
    if not items:
        raise UserInputError("input=[] is empty: give a file, a folder or a list of files.")
    paths = [Path(str(item)) for item in items]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserInputError(f"input: {missing[0]}{more} does not exist. Check the path.")
    return paths


def read_arrays(given: Any, input_shape: Sequence[int]) -> torch.Tensor:
    """Raw samples (N, *input_shape) from one ``.npy`` or ``.csv`` file."""
    paths = as_paths(given)
    if len(paths) != 1 or paths[0].suffix.lower() not in (".npy", ".csv"):
        raise UserInputError(
            f"input={given}: this run takes arrays, given as one .npy file of shape "
            f"(N, {', '.join(map(str, input_shape))}) or one .csv file of flattened samples."
        )
    path = paths[0]
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            values = read_csv_numbers(path)
    except ValueError as error:
        raise UserInputError(f"input={path} cannot be read as numbers: {error}") from error
    size = math.prod(input_shape)
    shape = tuple(input_shape)
    if values.ndim >= 1 and tuple(values.shape) == shape:
        values = values[None]  # one sample
    if values.ndim < 2 or not (
        values.shape[1] == size or squeezed(values.shape[1:]) == squeezed(shape)
    ):
        raise UserInputError(
            f"input={path} holds arrays of shape {tuple(values.shape)}, but the model takes "
            f"samples of shape {shape} ({size} values each): give (N, {', '.join(map(str, shape))}) "
            f"or (N, {size}) values."
        )
    if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
        raise UserInputError(f"input={path} holds values that are not finite numbers.")
    return torch.from_numpy(np.ascontiguousarray(values)).reshape(len(values), *shape)


def squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    """A shape without its 1s: (N, 8, 8) images fit a (1, 8, 8) model."""
    return tuple(int(d) for d in shape if d != 1)


def read_csv_numbers(path: Path) -> np.ndarray:
    """A CSV of numbers, with or without one header row."""
    import pandas as pd

    frame = pd.read_csv(path, header=None)
    first = pd.to_numeric(frame.iloc[0], errors="coerce")
    if first.isna().any():  # a header row
        frame = frame.iloc[1:]
    return frame.apply(pd.to_numeric).to_numpy(dtype=np.float64)


def image_paths(given: Any) -> list[Path]:
    """The image files of a folder (recursively, sorted), of one file, or of a list."""
    return file_paths(given, IMAGE_EXTENSIONS, "image")


def audio_paths(given: Any) -> list[Path]:
    """The WAV files of a folder (recursively, sorted), of one file, or of a list."""
    return file_paths(given, AUDIO_EXTENSIONS, "audio")


def file_paths(given: Any, extensions: Sequence[str], kind: str) -> list[Path]:
    """The files ending in one of ``extensions`` that ``given`` names or holds."""
    found: list[Path] = []
    for path in as_paths(given):
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions
            )
        elif path.suffix.lower() in extensions:
            found.append(path)
        else:
            raise UserInputError(
                f"input: {path} is not an {kind} file ({', '.join(extensions)}): this "
                f"run takes {kind} files (a folder, a file or a list of files)."
            )
    if not found:
        raise UserInputError(f"input={given} holds no {kind} files ({', '.join(extensions)}).")
    return found


def read_images(paths: list[Path], datamodule: Any) -> torch.Tensor:
    """Inputs of image files, as the image-folder run's val/test batches are made."""
    from src.data.components.image_files import ImageFiles

    datamodule.setup("test")  # reads the split and its cached mean/std
    files = ImageFiles(
        Path("/"),
        [str(p.resolve()) for p in paths],
        [0] * len(paths),
        datamodule.channels,
        datamodule.eval_transform,
        datamodule.mean,
        datamodule.std,
    )
    inputs = []
    for i in range(len(files)):
        sample = files[i]
        if isinstance(sample, Unreadable):
            raise UserInputError(
                f"input: {sample.path} is not an image PIL can read ({sample.reason})."
            )
        inputs.append(sample[0])
    return torch.stack(inputs)


def read_audio(paths: list[Path], datamodule: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectrograms and levels of WAV files, as the audio-folder run's val/test batches are
    made (resampled, cut to its duration, standardised with its training statistics)."""
    from src.data.components.audio_files import AudioFiles

    datamodule.setup("test")  # reads the split and its cached statistics
    files = AudioFiles(
        Path("/"),
        [str(p.resolve()) for p in paths],
        [0] * len(paths),
        datamodule.sample_rate,
        datamodule.num_samples,
        datamodule.spectrogram,
        (datamodule.height, datamodule.width),
        datamodule.stats,
    )
    xs, levels = [], []
    for i in range(len(files)):
        sample = files[i]
        if isinstance(sample, Unreadable):
            raise UserInputError(
                f"input: {sample.path} is not a WAV file scipy reads ({sample.reason})."
            )
        xs.append(sample[0])
        levels.append(sample[2])
    return torch.stack(xs), torch.stack(levels)


def read_vimh(path_given: Any, datamodule: Any, heads: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Normalised images and levels of a VIMH record file, with its label bytes."""
    from src.vimh.format import read_records

    paths = as_paths(path_given)
    if len(paths) != 1 or not paths[0].is_file():
        raise UserInputError(
            f"input={path_given}: this run takes one VIMH record file (a data set's train "
            "or test file)."
        )
    records = read_records(paths[0], len(heads))
    want = tuple(datamodule.spec["input_shape"])
    if tuple(records.images.shape[1:]) != want:
        raise UserInputError(
            f"input={paths[0]} holds {records.images.shape[1:]} images, but the model takes "
            f"{want} (channels, height, width)."
        )
    datamodule.setup("fit")  # the training split's statistics
    images = datamodule.from_raw(torch.from_numpy(records.images))
    labels = torch.from_numpy(records.labels).long()
    x, _, levels = datamodule.normalise(images, labels, torch.from_numpy(records.levels))
    return {"x": x, "levels": levels, "labels": labels}
