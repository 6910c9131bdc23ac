"""The base run of a LoRA experiment, trained on first use when no base is given.

``model.lora.base_ckpt: null`` with ``model.lora.base_experiment: <name>`` means:
the base is a run of ``experiment=<name>`` (plus ``model.lora.base_overrides``).
Like a generated VIMH data set, it lives at a path derived from its settings,
``<model.lora.base_runs_dir>/<name>_<hash of the composed base config>``:

- the first use trains it there (``src/train.py`` in a process of its own, into a
  ``.partial-<pid>`` directory renamed once the run has finished), so a run that
  fails or is interrupted never looks like a base; before the rename, the paths its
  files saved (``.hydra/``, ``run_metadata.json``, the logger's hparams, the
  checkpoints' callback states) are made to name the final directory, and its logs,
  which keep what was printed, end with a line saying where it was trained;
- a later use with the same settings finds it and trains nothing;
- a directory at that path whose recorded settings differ, or that holds no
  finished run, is an error: it is never overwritten.

The settings are the base's composed config without the keys that do not change
its weights (paths, loggers, extras, tags), plus the data directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from src.utils.atomic import write_bytes, write_text
from src.utils.ddp import LAUNCHER_ENV, is_extra_rank
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger
from src.utils.run_status import read_status

log = RankedLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
# written into a base run directory once its training has finished: what it was trained with
SETTINGS_FILE = "base_settings.yaml"
# config keys that do not change a base's weights: left out of its settings
NOT_SETTINGS = ("paths", "hydra", "extras", "logger", "tags", "task_name")


def base_settings(experiment: str, overrides: Sequence[str], data_dir: str) -> dict[str, Any]:
    """The composed config of ``experiment=<experiment> <overrides>`` (unresolved), less
    ``NOT_SETTINGS``, with the data directory: what identifies a base run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    wanted = [f"experiment={experiment}", *overrides]
    try:
        if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its search path
            cfg = compose(config_name="train", overrides=wanted)
        else:
            with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
                cfg = compose(config_name="train", overrides=wanted)
    except (HydraException, OmegaConfBaseException) as error:  # they name the bad override
        raise UserInputError(
            f"The LoRA base (model.lora.base_experiment={experiment}, model.lora."
            f"base_overrides={list(overrides)}) does not compose: {error}"
        ) from None
    settings = OmegaConf.to_container(cfg, resolve=False)
    for key in NOT_SETTINGS:
        settings.pop(key, None)
    settings["data_dir"] = str(Path(data_dir).resolve())
    return settings


def base_run_dir(runs_dir: str | Path, experiment: str, settings: dict[str, Any]) -> Path:
    """Where the base with these settings lives: one directory per settings."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return Path(runs_dir) / f"{experiment}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def existing_base(run_dir: Path, settings: dict[str, Any]) -> Path | None:
    """``run_dir`` when it holds the finished base of these settings; None when there is
    nothing there; an error for anything else (never overwritten)."""
    if not run_dir.exists():
        return None
    saved = run_dir / SETTINGS_FILE
    if not saved.is_file() or read_status(run_dir).get("status") != "finished":
        raise UserInputError(
            f"{run_dir} is where the LoRA base with these settings goes, but it holds no "
            f"finished base run (no {SETTINGS_FILE}, or run_status.json is not 'finished'). "
            "It is left as it is: move it away to train the base again, or give "
            "model.lora.base_ckpt=<a run directory or checkpoint>."
        )
    recorded = yaml.safe_load(saved.read_text())
    if json.dumps(recorded, sort_keys=True, default=str) != json.dumps(
        settings, sort_keys=True, default=str
    ):
        raise UserInputError(
            f"The LoRA base in {run_dir} was trained with other settings than the ones "
            f"asked for now (compare its {SETTINGS_FILE}), under the same name. It is not "
            "overwritten: move it away, or give model.lora.base_ckpt=<run directory>."
        )
    return run_dir


def train_base(
    run_dir: Path, experiment: str, overrides: Sequence[str], data_dir: str, log_dir: str
) -> Path:
    """Train the base with ``src/train.py`` in a process of its own (its seed, its
    loggers, no state shared with this run) into a partial directory, returned."""
    partial = run_dir.with_name(f"{run_dir.name}.partial-{os.getpid()}")
    command = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        f"experiment={experiment}",
        *overrides,
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={log_dir}",
        f"hydra.run.dir={partial}",
    ]
    log.info(
        f"Training the LoRA base in {partial}, renamed {run_dir} once it has finished (a "
        f"failed or interrupted training never looks like a base): {' '.join(command[1:])}"
    )
    # a single run of its own: none of the DDP launcher's variables of this process
    env = {k: v for k, v in os.environ.items() if k not in (*LAUNCHER_ENV, "RANK")}
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if done.returncode != 0:
        raise UserInputError(
            f"Training the LoRA base (experiment={experiment}) failed with exit status "
            f"{done.returncode}; its output is above and its log in {partial}/train.log. "
            "Fix what it says, or give model.lora.base_ckpt=<a run directory or checkpoint>."
        )
    return partial


def _renamed(value: Any, old: str, new: str, found: list[bool]) -> Any:
    """``value`` (a checkpoint's plain data) with ``old`` replaced by ``new`` in every
    string and dictionary key (``found`` gets True when one held it); tensors and other
    values as they are."""
    if isinstance(value, str):
        if old in value:
            found.append(True)
        return value.replace(old, new)
    if isinstance(value, dict):
        return {
            _renamed(k, old, new, found): _renamed(v, old, new, found) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_renamed(v, old, new, found) for v in value)
    return value


def name_final_directory(partial: Path, final: Path) -> list[Path]:
    """Make the files of the finished run in ``partial`` name ``final``, the directory it
    is about to be renamed to; returns the files changed.

    Every text file and checkpoint that holds the partial path gets the final one (Hydra's
    ``hydra.yaml``, ``run_metadata.json``, the logger's ``hparams.yaml``; ModelCheckpoint's
    ``dirpath`` and ``best_model_path``, without which Lightning drops the best-so-far
    state when the checkpoint is resumed in ``final``). A ``.log`` file keeps what was
    printed and gets a line saying where the run was trained. Files that are neither
    text nor checkpoints (images, event files) are left as they are."""
    import io

    import torch

    old, new = str(partial), str(final)
    note = (
        f"\n[LoRA base] trained in {old}, renamed {new} when it had finished; the paths "
        "above name the training directory.\n"
    )
    changed = []
    for path in sorted(p for p in partial.rglob("*") if p.is_file()):
        if path.suffix == ".ckpt":
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            found: list[bool] = []
            renamed = _renamed(checkpoint, old, new, found)
            if not found:
                continue
            buffer = io.BytesIO()
            torch.save(renamed, buffer)
            write_bytes(path, buffer.getvalue())
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:  # not text
                continue
            if old not in text:
                continue
            write_text(path, text + note if path.suffix == ".log" else text.replace(old, new))
        changed.append(path)
    return changed


def find_or_train_base(
    experiment: str,
    overrides: Sequence[str],
    runs_dir: str | Path,
    data_dir: str,
    log_dir: str,
    may_train: bool = True,
) -> Path:
    """The directory of the finished base run of ``experiment`` with ``overrides``:
    found, or trained now (see the module's docstring) unless not ``may_train``."""
    overrides = list(overrides)
    settings = base_settings(experiment, overrides, data_dir)
    run_dir = base_run_dir(runs_dir, experiment, settings)
    found = existing_base(run_dir, settings)
    if found is not None:
        log.info(f"LoRA base: {found} (experiment={experiment}, trained before)")
        return found
    if not may_train:
        raise UserInputError(
            f"The LoRA base of this model (experiment={experiment}, base_overrides="
            f"{overrides}) is not in {run_dir}, and the model comes from a saved run config, "
            "which may not start a training run (it would run src/train.py with the config's "
            "base_overrides). Put the base back there, or, if you trust the run directory, "
            "add trust_run_dir=true to the command to train the base again."
        )
    if is_extra_rank():  # rank 0 builds its model first, so the base exists by now
        raise UserInputError(f"DDP rank found no LoRA base in {run_dir}: rank 0 trains it.")
    run_dir = run_dir.absolute()  # the training process runs in ROOT, not here
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = train_base(run_dir, experiment, overrides, data_dir, log_dir)
    name_final_directory(partial, run_dir)
    write_text(partial / SETTINGS_FILE, yaml.safe_dump(settings, sort_keys=True))
    try:
        partial.rename(run_dir)
    except OSError:  # another job (a parallel launcher) finished the same base first
        found = existing_base(run_dir, settings)
        if found is None:
            raise
        shutil.rmtree(partial)  # this call's own copy of the same base
    log.info(
        f"LoRA base trained: {run_dir} (renamed from {partial.name}; the paths saved in it "
        "name this directory)"
    )
    return run_dir
