"""A run directory belongs to one run: Hydra callback that refuses to mix two runs.

``hydra.run.dir=<existing run>`` would overwrite the old run's saved config,
status and metadata and put a ``last-v1.ckpt`` beside its ``last.ckpt``.
``ProtectRunDir`` runs before Hydra writes anything (``on_run_start``) and
stops with one message when the directory is not empty, except when the run
resumes that directory's own checkpoint (``ckpt_path=<dir>/checkpoints/...``):
then the run continues in place, and the previous ``.hydra/`` files are kept
in ``.hydra/history/<n>/`` so every configuration the run had stays on disk, with the
run's status and metadata of that moment. A resume that fails before it has saved a
checkpoint (the checkpoint does not fit the changed model, a bad setting) puts them
back (``undo_failed_resume``): the run is left as it was, its config the one its
checkpoints were trained with. Before all that it runs the config checks
(``src/utils/config_checks.py``), so a wrong value makes no directory and rewrites none.

DDP's extra ranks (1..N-1) join the directory their rank 0 has just made, so
they skip the check, but only on evidence that they are such ranks, never on a
rank variable alone (``RANK=1`` left in a shell, a cluster that sets it for
every job would otherwise let an ordinary run into an old run's directory):

- ranks started by Lightning's launcher inherit rank 0's environment, where
  rank 0 put the resolved run directory it checked (``JOIN_ENV``, set here for
  a single run and by ``src.utils.ddp.multirun_job_as_single_run`` for a
  multirun job): the rank joins that directory only;
- ranks started by torchrun (``TORCHELASTIC_RUN_ID``) or by one ``srun`` step of
  several tasks (``SLURM_STEP_NUM_TASKS``) start together with rank 0: they
  join a directory only while everything in it is fresh (written in the last
  ``FRESH_SECONDS``), i.e. by this launch, not an older run.

Light: no Lightning import (this runs in every process Hydra starts); torch only to read
the checkpoint of a training run that resumes its own directory, which must be readable
and have epochs left: a resume that would stop at once stops here, with nothing rewritten.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

HISTORY = Path(".hydra") / "history"
# an extra rank of torchrun or srun joins a directory whose files are all this recent
FRESH_SECONDS = 120


def _own_checkpoint(run_dir: Path, ckpt_path: Any) -> bool:
    if not ckpt_path or str(ckpt_path) in ("last", "best", "hpc", "registry"):
        return False
    try:
        return Path(ckpt_path).resolve().is_relative_to((run_dir / "checkpoints").resolve())
    except OSError:
        return False


def quiet_own_checkpoint_dir(run_dir: Path, ckpt_path: Any) -> None:
    """A resume into the run's own directory (the documented way) finds its checkpoints
    there on purpose: Lightning's "Checkpoint directory ... exists and is not empty" says
    nothing then. Other directories keep the warning."""
    if _own_checkpoint(run_dir, ckpt_path):
        import re
        import warnings

        where = re.escape(str(Path(run_dir) / "checkpoints"))
        warnings.filterwarnings("ignore", message=f"Checkpoint directory {where}/? exists")


def _run_files() -> tuple[str, ...]:
    """The files in a run directory that a run rewrites when it starts, besides ``.hydra/``."""
    from src.utils.run_metadata import DIFF_FILE, METADATA_FILE, SPLITS_FILE
    from src.utils.run_status import STATUS_FILE

    return STATUS_FILE, METADATA_FILE, DIFF_FILE, SPLITS_FILE


# run directory -> the history entry this process made for it (undo_failed_resume)
_kept: dict[Path, Path] = {}


def keep_config_history(run_dir: Path) -> Path | None:
    """Copy ``<run_dir>/.hydra/*.yaml`` and the run's status and metadata files to
    ``.hydra/history/<n>/`` (n = 1, 2, ...)."""
    saved = sorted((run_dir / ".hydra").glob("*.yaml"))
    if not saved:
        return None
    history = run_dir / HISTORY
    number = 1 + max((int(p.name) for p in history.glob("*") if p.name.isdigit()), default=0)
    target = history / f"{number:03d}"
    target.mkdir(parents=True)
    for path in [*saved, *(run_dir / name for name in _run_files())]:
        if path.is_file():
            shutil.copy2(path, target / path.name)
    _kept[run_dir.resolve()] = target
    return target


def undo_failed_resume(run_dir: Path) -> Path | None:
    """After this process's resume of ``run_dir`` failed: when it saved no checkpoint, put
    back the files its history entry kept (removing those the resume added) and drop the
    entry, so the run is as it was. Returns the entry it restored, if any."""
    entry = _kept.pop(run_dir.resolve(), None)
    if entry is None or not entry.is_dir():
        return None
    started = entry.stat().st_mtime
    checkpoints = (run_dir / "checkpoints").glob("*.ckpt")
    if any(path.stat().st_mtime > started for path in checkpoints):
        return None  # it trained on: its config is the one its newest checkpoint has
    kept = {path.name for path in entry.iterdir()}
    for path in [*(run_dir / ".hydra").glob("*.yaml"), *(run_dir / n for n in _run_files())]:
        if path.is_file() and path.name not in kept:
            path.unlink()
    for name in kept:
        home = run_dir / ".hydra" if name.endswith(".yaml") else run_dir
        shutil.copy2(entry / name, home / name)
    shutil.rmtree(entry)
    if not any(entry.parent.iterdir()):
        entry.parent.rmdir()
    return entry


def _cannot_resume(ckpt_path: Path, trainer: Any) -> str | None:
    """Why training cannot resume ``ckpt_path`` under ``trainer`` (None when it can, or
    when that is for the run to find out): the file is unreadable, or it already holds
    ``trainer.max_epochs`` epochs. Said here, before Hydra rewrites the run's saved
    config and the run its status, so a resume that stops at once leaves the run as it
    was (train.py checks the same again, for runs in a new directory)."""
    from src.utils.checkpoints import check_training_left, load_weights_only
    from src.utils.errors import UserInputError

    try:
        checkpoint = load_weights_only(ckpt_path, "Checkpoint")
        if isinstance(checkpoint, dict):
            check_training_left(ckpt_path, checkpoint, trainer)
    except UserInputError as error:
        return str(error)
    except Exception:  # e.g. a limit that does not resolve yet: the run itself says
        return None
    return None


def check_run_dir(run_dir: Path, ckpt_path: Any, trainer: Any = None) -> str | None:
    """Why ``run_dir`` cannot take this run (None when it can); keeps the config
    history when the run resumes the directory's own checkpoint. With ``trainer`` (the
    config of a training run), that checkpoint must be readable and have epochs left."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return None
    if _own_checkpoint(run_dir, ckpt_path):
        if not Path(ckpt_path).is_file():
            return f"ckpt_path={ckpt_path} does not exist, so {run_dir} cannot be resumed."
        if trainer is not None:
            problem = _cannot_resume(Path(ckpt_path), trainer)
            if problem:
                return problem
        keep_config_history(run_dir)
        return None
    return (
        f"The run directory {run_dir} is not empty: it holds another run. Resume that run "
        f"with ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'} hydra.run.dir={run_dir}, "
        "or pick a new directory (leave hydra.run.dir unset for a fresh timestamped one)."
    )


def _fresh(run_dir: Path) -> bool:
    """Whether every file in ``run_dir`` was written in the last ``FRESH_SECONDS``."""
    oldest = time.time() - FRESH_SECONDS
    return all(p.stat().st_mtime >= oldest for p in run_dir.rglob("*") if p.is_file())


def joins_rank_zero(run_dir: Path) -> bool:
    """Whether this process is an extra DDP rank that may enter ``run_dir`` unchecked
    (see the module docstring)."""
    from src.utils.ddp import JOIN_ENV, is_extra_rank

    if not is_extra_rank():
        return False
    if os.environ.get(JOIN_ENV) == str(run_dir.resolve()):  # Lightning's launcher
        return True
    launched = "TORCHELASTIC_RUN_ID" in os.environ
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "1")
    launched |= tasks.isdigit() and int(tasks) > 1
    return launched and (not run_dir.is_dir() or _fresh(run_dir))


def _config_problem(config: DictConfig) -> str | None:
    """What ``src.utils.config_checks`` finds wrong in a config that runs a trainer (the
    entry point checks the same again, for the jobs of a multirun), or a tool that needs
    a trained model given none (``python src/eval.py`` alone left an empty eval run)."""
    if "run_dir" in config and "ckpt_path" in config:  # eval.py, predict.py: a trained model
        if not config.get("run_dir") and not config.get("ckpt_path"):
            return "Give the model: run_dir=<training run> or ckpt_path=<file.ckpt>."
    if "trainer" not in config:
        return None
    from src.utils.config_checks import check_config
    from src.utils.errors import UserInputError

    try:
        check_config(config)
    except UserInputError as error:
        return str(error)
    return None


class ProtectRunDir(Callback):
    """Hydra callback (``hydra.callbacks.protect_run_dir``): see the module docstring."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from src.utils.ddp import JOIN_ENV

        run_dir = Path(str(config.hydra.run.dir))
        if joins_rank_zero(run_dir):  # DDP rank 1..: the directory its rank 0 has just made
            return
        trainer = config.get("trainer") if config.get("train") else None
        # a bad value stops the run before Hydra makes its directory (or, for a resume,
        # rewrites the saved config of the run it would resume)
        problem = _config_problem(config) or check_run_dir(
            run_dir, config.get("ckpt_path"), trainer
        )
        if problem:
            print(f"Error: {problem}", file=sys.stderr, flush=True)
            raise SystemExit(1)
        os.environ[JOIN_ENV] = str(run_dir.resolve())  # for the ranks Lightning starts
