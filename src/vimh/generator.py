"""Make a VIMH data set from its plan (``src.vimh.plan``), or find it already made.

The parameters are drawn and their label bytes encoded first; then
``workers`` processes render the notes straight into the record files
(``src.vimh.rendering``), so the bytes do not depend on the number of workers
(which is not a setting).

The directory's name says what it holds: every setting that changes the bytes
(``plan.name_extras``), NSMT's names for the default settings. Its JSON keeps the
settings and their hash. Generating again with the same settings
does nothing; a directory made from other settings is an error unless
``overwrite`` is set. The data set is written to a hidden sibling directory
and renamed into place at the end, so an interrupted run never leaves a half
data set under the real name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from src.utils.errors import UserInputError
from src.vimh.format import FORMAT_VERSION, INFO_FILE, SPLIT_FILES, encode_labels, write_info
from src.vimh.plan import Plan, make_plan
from src.vimh.rendering import Job, num_chunks, render_into, usable_workers
from src.vimh.sampling import choose


def readable_mapping(spec: dict[str, float]) -> dict[str, Any]:
    """A parameter's JSON mapping. A continuous parameter gets the label byte's resolution
    as its ``step`` and ``"continuous": true``: NSMT's reader needs a step for every
    parameter (it refuses a mapping without one), and reads that one as 256 classes, one
    per byte, which is what ``src.vimh.heads`` makes of a continuous parameter too."""
    if "step" in spec:
        return dict(spec)
    byte_width = (spec["max"] - spec["min"]) / 255  # encode_labels' 256 levels
    return {**spec, "step": byte_width, "continuous": True}


def split_sizes(settings: dict[str, Any]) -> tuple[int, int]:
    """(train, test) samples: the test fraction, at least one of each."""
    size = settings["size"]
    num_test = min(max(round(size * settings["test_fraction"]), 1), size - 1)
    return size - num_test, num_test


def describe(plan: Plan) -> dict[str, Any]:
    """The data set's JSON."""
    preset, (num_train, num_test) = plan.preset, split_sizes(plan.settings)
    return {
        "format": "VIMH",
        "version": FORMAT_VERSION,
        "height": preset["height"],
        "width": preset["width"],
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
        "spectrogram": plan.spectrogram.describe(plan.num_samples, preset["width"]),
        "image_layout": "rows: frequency (row 0 lowest); columns: time",
        "settings_hash": plan.settings_hash,
        "generation_settings": plan.settings,
    }


def write_into(directory: Path, plan: Plan, workers: int) -> dict[str, Any]:
    """Draw the parameters, render every note into the record files and write the JSON,
    in the existing empty ``directory``, with ``workers`` processes. Returns the JSON."""
    settings = plan.settings
    size = settings["size"]
    values = choose(plan.varying, size, settings["seed"], settings.get("sampling", "random"))
    labels = np.stack(
        [encode_labels(values[n], s["min"], s["max"]) for n, s in plan.varying.items()], axis=1
    )
    params = {**values, **{name: np.full(size, v) for name, v in plan.fixed.items()}}
    paths = tuple(directory / split for split in SPLIT_FILES)
    render_into(Job(plan, params, labels, paths, split_sizes(settings)), workers)
    info = describe(plan)
    write_info(directory, info)
    return info


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


# the data sets this process has said it found: loading several runs of one data set (a
# notebook comparing architectures) finds it once per run, and the reader needs one line
_FOUND: set[Path] = set()


def generate_vimh(
    settings: dict[str, Any],
    parent_dir: str | Path,
    overwrite: bool = False,
    workers: int | None = 1,
) -> Path:
    """Make ``parent_dir/<name>`` from the settings, unless it exists with these settings.

    ``workers``: processes that render notes side by side, this one included (``None``:
    one per core).

    An existing data set is reported once per process (``_FOUND``).

    Returns the data set's directory. Raises ``UserInputError`` when a
    directory of that name holds something else and ``overwrite`` is false.
    """
    plan = make_plan(settings)
    workers = usable_workers(workers, num_chunks(plan.settings["size"]))
    target = Path(parent_dir) / plan.name
    if target.exists():
        if _stored_settings(target)[0] == plan.settings_hash:
            if target.resolve() not in _FOUND:
                _FOUND.add(target.resolve())
                print(f"VIMH data set {target} exists with these settings: nothing to do.")
            return target
        if not overwrite:
            raise UserInputError(
                f"{target} exists but {_clash(target, plan)}. Pass overwrite=true to replace "
                "it, or choose another directory (paths.data_dir=...)."
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.name}.", suffix=".partial", dir=target.parent))
    # mkdtemp makes it 0700; the data set it becomes is as readable as any directory the
    # user makes (the umask's say), so a shared data folder stays shared
    mask = os.umask(0)
    os.umask(mask)
    staging.chmod(0o777 & ~mask)
    try:
        info = write_into(staging, plan, workers)
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
