"""Make a VIMH data set from its plan (``src.vimh.plan``), or find it already made.

Notes are rendered in chunks of ``CHUNK``; ``workers`` processes render the
chunks side by side. The parameters are drawn before any chunk is rendered, so
the bytes do not depend on the number of workers (which is not a setting).

The directory's name says what it holds (``vimh.dataset_name``) and its JSON
keeps the settings and their hash. Generating again with the same settings
does nothing; a directory made from other settings is an error unless
``overwrite`` is set. The data set is written to a hidden sibling directory
and renamed into place at the end, so an interrupted run never leaves a half
data set under the real name.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from src.utils.errors import UserInputError
from src.vimh.format import (
    FORMAT_VERSION,
    INFO_FILE,
    Records,
    encode_labels,
    write_dataset,
)
from src.vimh.plan import Plan, make_plan
from src.vimh.sampling import choose

# notes rendered together: large enough to amortise the filter's per-step cost,
# small enough that a chunk's audio and frames stay in the tens of MB
CHUNK = 512
# workers start by fork: they inherit the plan at once (forkserver and spawn re-import the
# caller's main module first, seconds per worker) and run numpy only, never torch, so the
# thread pools a training process may hold do not matter to them
START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def spectrogram_images(plan: Plan, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Images (notes, channels, H, W) uint8 and their (spec_min_db, spec_max_db) for one
    value per note of every synthesizer parameter."""
    sample_rate, height, width = (plan.preset[k] for k in ("sample_rate", "height", "width"))
    audio = plan.synthesizer.render(params, sample_rate, plan.num_samples)
    return plan.spectrogram.to_bytes(plan.spectrogram.power_db(audio, sample_rate, height, width))


def usable_workers(workers: int | None, chunks: int) -> int:
    """``workers`` processes, or one per core this process may use (``None``), never more
    than there are chunks to render."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise UserInputError(
            f"workers={workers!r}: give a whole number >= 1, or null (one per core)."
        )
    return max(1, min(workers, chunks))


def render_chunks(plan: Plan, chunks: list[dict[str, np.ndarray]], workers: int) -> list[Any]:
    """``spectrogram_images`` of every chunk, in order, in ``workers`` processes."""
    if workers == 1:
        return [spectrogram_images(plan, chunk) for chunk in chunks]
    context = multiprocessing.get_context(START_METHOD)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(spectrogram_images, [plan] * len(chunks), chunks))


def readable_mapping(spec: dict[str, float]) -> dict[str, Any]:
    """A parameter's JSON mapping. A continuous parameter gets the label byte's resolution
    as its ``step`` and ``"continuous": true``: NSMT's reader needs a step for every
    parameter (it refuses a mapping without one), and reads that one as 256 classes, one
    per byte, which is what ``src.vimh.heads`` makes of a continuous parameter too."""
    if "step" in spec:
        return dict(spec)
    byte_width = (spec["max"] - spec["min"]) / 255  # encode_labels' 256 levels
    return {**spec, "step": byte_width, "continuous": True}


def render(plan: Plan, workers: int | None = 1) -> tuple[dict[str, Any], dict[str, Records]]:
    """Draw the parameters, synthesize and image every note: (JSON info, train and test)."""
    settings, preset = plan.settings, plan.preset
    size, height, width = settings["size"], preset["height"], preset["width"]
    values = choose(plan.varying, size, settings["seed"], settings.get("sampling", "random"))
    params = {**values, **{name: np.full(size, v) for name, v in plan.fixed.items()}}
    images = np.empty((size, plan.spectrogram.channels, height, width), np.uint8)
    levels = np.empty((size, 2), np.float32)
    starts = range(0, size, CHUNK)
    chunks = [{name: v[start : start + CHUNK] for name, v in params.items()} for start in starts]
    rendered = render_chunks(plan, chunks, usable_workers(workers, len(chunks)))
    for start, (chunk_images, chunk_levels) in zip(starts, rendered, strict=True):
        images[start : start + CHUNK], levels[start : start + CHUNK] = chunk_images, chunk_levels
    labels = np.stack(
        [encode_labels(values[n], s["min"], s["max"]) for n, s in plan.varying.items()], axis=1
    )
    num_test = min(max(round(size * settings["test_fraction"]), 1), size - 1)
    num_train = size - num_test
    info = {
        "format": "VIMH",
        "version": FORMAT_VERSION,
        "height": height,
        "width": width,
        "channels": plan.spectrogram.channels,
        "varying_parameters": len(plan.varying),
        "parameter_names": list(plan.varying),
        "parameter_mappings": {
            name: {**readable_mapping(spec), "description": plan.synthesizer.parameters[name]}
            for name, spec in plan.varying.items()
        },
        "fixed_parameters": plan.fixed,
        "label_encoding": "value byte q = floor(255 (x - min) / (max - min))",
        "train_samples": num_train,
        "test_samples": num_test,
        "sample_rate": preset["sample_rate"],
        "duration": preset["duration"],
        "synth": preset["name"],
        "synthesizer": preset["synthesizer"],
        "spectrogram": plan.spectrogram.describe(plan.num_samples, width),
        "image_layout": "rows: frequency (row 0 lowest); columns: time",
        "settings_hash": plan.settings_hash,
        "generation_settings": settings,
    }
    splits = {
        "train": Records(images[:num_train], labels[:num_train], levels[:num_train]),
        "test": Records(images[num_train:], labels[num_train:], levels[num_train:]),
    }
    return info, splits


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _stored_settings(directory: Path) -> tuple[str | None, dict[str, Any] | None, str]:
    """(settings hash, settings, why they are unknown) of an existing directory."""
    info_path = directory / INFO_FILE
    if not info_path.is_file():
        return None, None, f"it has no {INFO_FILE}"
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError:
        return None, None, f"its {INFO_FILE} is not valid JSON"
    return info.get("settings_hash"), info.get("generation_settings"), "it records no settings"


def _clash(directory: Path, plan: Plan) -> str:
    """What differs between the settings that made ``directory`` and ``plan``'s."""
    _, stored, why = _stored_settings(directory)
    if stored is None:
        return why
    old, new = _flatten(stored), _flatten(plan.settings)
    changes = [
        f"{k}: {old.get(k)} -> {new.get(k)}" for k in sorted(old | new) if old.get(k) != new.get(k)
    ]
    if not changes:
        return "it was made by another version of the generator"
    return "it was made with other settings (" + "; ".join(changes[:6]) + ")"


def generate_vimh(
    settings: dict[str, Any],
    parent_dir: str | Path,
    overwrite: bool = False,
    workers: int | None = 1,
) -> Path:
    """Make ``parent_dir/<name>`` from the settings, unless it exists with these settings.

    ``workers``: processes that render notes side by side (``None``: one per core).

    Returns the data set's directory. Raises ``UserInputError`` when a
    directory of that name holds something else and ``overwrite`` is false.
    """
    plan = make_plan(settings)
    target = Path(parent_dir) / plan.name
    if target.exists():
        if _stored_settings(target)[0] == plan.settings_hash:
            print(f"VIMH data set {target} exists with these settings: nothing to do.")
            return target
        if not overwrite:
            raise UserInputError(
                f"{target} exists but {_clash(target, plan)}. Pass overwrite=true to replace "
                "it, or choose another directory (paths.data_dir=...)."
            )
    info, splits = render(plan, workers)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.name}.", suffix=".partial", dir=target.parent))
    try:
        write_dataset(staging, info, splits)
        _move_into_place(staging, target, plan, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(
        f"VIMH data set {target}: {info['train_samples']} train + "
        f"{info['test_samples']} test samples."
    )
    return target


def _move_into_place(staging: Path, target: Path, plan: Plan, overwrite: bool) -> None:
    """Rename the finished data set to its name (replacing the old one if overwriting)."""
    if overwrite and target.exists():
        replaced = target.with_name(f".{target.name}.replaced-{os.getpid()}")
        target.rename(replaced)
        staging.rename(target)
        shutil.rmtree(replaced)
        return
    try:
        staging.rename(target)
    except OSError:
        # another process (a DDP rank, say) may have finished the same data set first
        if _stored_settings(target)[0] != plan.settings_hash:
            raise
