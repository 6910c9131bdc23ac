"""A run directory belongs to one run: Hydra callback that refuses to mix two runs.

``hydra.run.dir=<existing run>`` would overwrite the old run's saved config,
status and metadata and put a ``last-v1.ckpt`` beside its ``last.ckpt``.
``ProtectRunDir`` runs before Hydra writes anything (``on_run_start``) and
stops with one message when the directory is not empty, except when the run
resumes that directory's own checkpoint (``ckpt_path=<dir>/checkpoints/...``):
then the run continues in place, and the previous ``.hydra/`` files are kept
in ``.hydra/history/<n>/`` so every configuration the run had stays on disk.

Light: no Lightning import (this runs in every process Hydra starts).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

HISTORY = Path(".hydra") / "history"


def _own_checkpoint(run_dir: Path, ckpt_path: Any) -> bool:
    if not ckpt_path or str(ckpt_path) in ("last", "best", "hpc", "registry"):
        return False
    try:
        return Path(ckpt_path).resolve().is_relative_to((run_dir / "checkpoints").resolve())
    except OSError:
        return False


def keep_config_history(run_dir: Path) -> Path | None:
    """Copy ``<run_dir>/.hydra/*.yaml`` to ``.hydra/history/<n>/`` (n = 1, 2, ...)."""
    saved = sorted((run_dir / ".hydra").glob("*.yaml"))
    if not saved:
        return None
    history = run_dir / HISTORY
    number = 1 + max((int(p.name) for p in history.glob("*") if p.name.isdigit()), default=0)
    target = history / f"{number:03d}"
    target.mkdir(parents=True)
    for path in saved:
        shutil.copy2(path, target / path.name)
    return target


def check_run_dir(run_dir: Path, ckpt_path: Any) -> str | None:
    """Why ``run_dir`` cannot take this run (None when it can); keeps the config
    history when the run resumes the directory's own checkpoint."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return None
    if _own_checkpoint(run_dir, ckpt_path):
        if not Path(ckpt_path).is_file():
            return f"ckpt_path={ckpt_path} does not exist, so {run_dir} cannot be resumed."
        keep_config_history(run_dir)
        return None
    return (
        f"The run directory {run_dir} is not empty: it holds another run. Resume that run "
        f"with ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'} hydra.run.dir={run_dir}, "
        "or pick a new directory (leave hydra.run.dir unset for a fresh timestamped one)."
    )


class ProtectRunDir(Callback):
    """Hydra callback (``hydra.callbacks.protect_run_dir``): see the module docstring."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from src.utils.ddp import is_extra_rank

        if is_extra_rank():  # DDP rank 1..: joins the directory its rank 0 has just made
            return
        problem = check_run_dir(Path(str(config.hydra.run.dir)), config.get("ckpt_path"))
        if problem:
            print(f"Error: {problem}", file=sys.stderr, flush=True)
            raise SystemExit(1)
