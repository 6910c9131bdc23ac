"""Example data folders (no downloads here): the digits as PNGs, synthesized WAV notes.

``write_digit_images`` / ``write_synth_notes`` write ``<root>/raw/<class>/<file>``
(``make example-images`` / ``make example-audio``, ``src/tools/example_folders.py``).

``example_folder(kind, settings)`` is what a folder data module uses when no
``data.root`` is given (``data.example``, the folder experiments): the example
with these settings, written on first use with its default split, at a path
derived from the settings, ``<dir>/<name from the settings>`` (like a generated
VIMH data set):

- the first use writes it into a ``.partial-<pid>`` directory, renamed when the
  files, ``splits/`` and ``example.json`` (the settings) are all there;
- a later use with the same settings finds it and writes nothing;
- a directory at that path that holds other settings, or no ``example.json``, is an
  error: it is never overwritten.

It never writes into a ``data.root`` the user gave.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from src.data.components.folder_splits import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, make_splits
from src.utils.errors import UserInputError

# the audio classes: (waveform, MIDI note)
AUDIO_CLASSES = {"saw_low": ("saw", 48), "saw_high": ("saw", 67), "sine_low": ("sine", 48),
                 "sine_high": ("sine", 67)}  # fmt: skip
RECORD = "example.json"  # the settings an example folder was written with
# each kind's settings (besides `dir`) and their types
SETTINGS = {
    "image": {"image_size": int, "channels": int},
    "audio": {"per_class": int, "sample_rate": int, "seconds": float, "seed": int},
}
SPLIT = {"seed": 42, "val": 0.15, "test": 0.15}  # the default split (make split)


def write_digit_images(
    root: str | Path, size: int = 32, channels: int = 3, per_class: int | None = None
) -> Path:
    """The digits as ``size`` x ``size`` PNGs (nearest-neighbour upscaled, grey in
    ``channels`` channels) under ``<root>/raw/<digit>/``; ``per_class`` keeps the first ones."""
    from PIL import Image
    from sklearn.datasets import load_digits

    raw = Path(root) / "raw"
    digits = load_digits()
    counts: dict[int, int] = {}
    for number, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        label = int(label)
        if per_class is not None and counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        pixels = Image.fromarray((image * (255 / 16)).astype(np.uint8), mode="L")
        pixels = pixels.resize((size, size), Image.Resampling.NEAREST)
        if channels == 3:
            pixels = pixels.convert("RGB")
        (raw / str(label)).mkdir(parents=True, exist_ok=True)
        pixels.save(raw / str(label) / f"{number:04d}.png")
    return raw


def write_synth_notes(
    root: str | Path, per_class: int = 40, sample_rate: int = 8000, seconds: float = 0.25,
    seed: int = 0,
) -> Path:  # fmt: skip
    """WAV notes under ``<root>/raw/<class>/``: sawtooth (``vimh.synths.sawtooth``) or
    sine at a low or a high pitch, each with a random loudness, detune and decay."""
    from scipy.io import wavfile

    from src.vimh.synths import sawtooth

    raw = Path(root) / "raw"
    rng = np.random.default_rng(seed)
    num_samples = round(seconds * sample_rate)
    t = np.arange(num_samples) / sample_rate
    for name, (wave, note) in AUDIO_CLASSES.items():
        notes = note + rng.uniform(-0.5, 0.5, per_class)
        if wave == "saw":
            audio = sawtooth(notes, sample_rate, num_samples).astype(np.float64)
        else:
            freq = 440.0 * 2.0 ** ((notes[:, None] - 69.0) / 12.0)
            audio = np.sin(2 * np.pi * freq * t)
        gain = rng.uniform(0.2, 0.9, (per_class, 1))
        decay = np.exp(-t / rng.uniform(0.05, 0.5, (per_class, 1)))
        audio = (audio * gain * decay * 32767).astype(np.int16)
        (raw / name).mkdir(parents=True, exist_ok=True)
        for number, row in enumerate(audio):
            wavfile.write(raw / name / f"{number:04d}.wav", sample_rate, row)
    return raw


def example_settings(kind: str, example: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of ``data.example`` (less ``dir``), checked: they name the folder."""
    wanted = SETTINGS[kind]
    given = {k: v for k, v in example.items() if k != "dir"}
    if set(given) != set(wanted) or "dir" not in example:
        raise UserInputError(
            f"data.example has keys {sorted(example)}; a {kind} example takes exactly "
            f"{sorted(['dir', *wanted])}."
        )
    settings: dict[str, Any] = {"kind": kind}
    for key, kind_of in wanted.items():
        value = given[key]
        least = 0 if key == "seed" else 1e-9
        if isinstance(value, bool) or not isinstance(value, int | float) or value < least:
            what = "0 or more" if key == "seed" else "a positive number"
            raise UserInputError(f"data.example.{key}={value!r} must be {what}.")
        if kind_of is int and value != int(value):
            raise UserInputError(f"data.example.{key}={value!r} must be a whole number.")
        settings[key] = kind_of(value)
    if kind == "image" and settings["channels"] not in (1, 3):
        raise UserInputError(f"data.example.channels={settings['channels']} must be 1 or 3.")
    return {**settings, "split": dict(SPLIT)}


def example_name(settings: Mapping[str, Any]) -> str:
    """The folder name of an example: its settings, readable."""
    if settings["kind"] == "image":
        return f"digits_png_{settings['image_size']}px_{settings['channels']}ch"
    seconds = f"{settings['seconds']:g}".replace(".", "p")
    return (
        f"notes_wav_{settings['sample_rate']}Hz_{seconds}s_{settings['per_class']}pc"
        f"_seed{settings['seed']}"
    )


def existing_example(root: Path, settings: Mapping[str, Any]) -> Path | None:
    """``root`` when it holds the example of these settings; None when nothing is there;
    an error for anything else (never overwritten)."""
    if not root.exists():
        return None
    record = root / RECORD
    if not record.is_file():
        raise UserInputError(
            f"{root} is where the example folder of data.example goes, but it holds no "
            f"{RECORD} (not written as an example, or unfinished). It is left as it is: move "
            "it away to have the example written there, or give data.root=<your folder>."
        )
    try:
        recorded = json.loads(record.read_text())
    except (OSError, ValueError) as error:
        raise UserInputError(f"{record} cannot be read ({error}). Move {root} away.") from error
    if recorded != dict(settings):
        raise UserInputError(
            f"The example folder {root} was written with {recorded}, not {dict(settings)}, "
            "under the same name. It is not overwritten: move it away, or give "
            "data.root=<your folder>."
        )
    return root


def write_example(partial: Path, settings: Mapping[str, Any]) -> None:
    """The files, the default split and the record of an example, into ``partial``."""
    if settings["kind"] == "image":
        write_digit_images(partial, settings["image_size"], settings["channels"])
        extensions = IMAGE_EXTENSIONS
    else:
        write_synth_notes(partial, settings["per_class"], settings["sample_rate"],
                          settings["seconds"], settings["seed"])  # fmt: skip
        extensions = AUDIO_EXTENSIONS
    split = settings["split"]
    make_splits(partial, split["seed"], split["val"], split["test"], None, extensions)
    (partial / RECORD).write_text(json.dumps(dict(settings), indent=2) + "\n")


def example_folder(kind: str, example: Mapping[str, Any]) -> Path:
    """The example folder of ``data.example``: found, or written now (see the docstring)."""
    settings = example_settings(kind, example)
    root = Path(example["dir"]) / example_name(settings)
    if existing_example(root, settings) is not None:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(f".{root.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)  # this process's own leftover
    write_example(partial, settings)
    try:
        os.replace(partial, root)  # all files appear at once
    except OSError:  # another process (a DDP rank, a parallel job) wrote it first
        if existing_example(root, settings) is None:
            raise
        shutil.rmtree(partial)
    return root
