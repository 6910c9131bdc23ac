"""How a run ended, in ``<run>/run_status.json``: written by ``task_wrapper``, read by
``src.utils.runs``.

Light on purpose (Lightning is imported only when a status is written, by then
the task has imported it): ``src/train.py`` decorates its task with this at
import time, and a sweeper process that only launches jobs should not pay for
Lightning.

Statuses: ``running`` (written at the start), ``finished`` (with the final
metrics), ``failed`` (with the error), ``diverged`` (with the epoch and step of
the first non-finite loss), ``interrupted`` (SIGTERM, Ctrl-C; with the command
that resumes it). ``read_status`` reports an unreadable file as ``damaged``.
The file is always strict JSON (a NaN metric is written as null) and written
atomically.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.utils.atomic import DiskFullError, write_json
from src.utils.logging_utils import RankedLogger, current_rank

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = RankedLogger(__name__)


STATUS_FILE = "run_status.json"


def write_status(output_dir: str, status: dict[str, Any]) -> None:
    if current_rank() != 0:
        return
    write_json(Path(output_dir) / STATUS_FILE, status)


def mark_failed(output_dir: str, error: Exception) -> None:
    """Record as failed a run whose task finished but whose entry point then failed (its
    ``optimized_metric`` was not logged): the metrics it logged stay in the status."""
    status = read_status(output_dir)
    write_status(
        output_dir, {**status, "status": "failed", "error": f"{type(error).__name__}: {error}"}
    )


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """The run's status; ``{"status": "damaged", ...}`` for a file that is not a JSON object
    (truncated by a full disk, edited by hand), ``{}`` without one."""
    path = Path(run_dir) / STATUS_FILE
    if not path.is_file():
        return {}
    try:
        status = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return {"status": "damaged", "error": f"{path} is unreadable: {type(error).__name__}"}
    if not isinstance(status, dict):
        return {"status": "damaged", "error": f"{path} holds no JSON object"}
    return status


# the Optuna sweeper's overrides that tell a job its trial (hydra_plugins/optuna_study_sweeper/
# _trials.py): internal, and a resumed trial must not report into its trial, finished by then
TRIAL_OVERRIDE = "hydra.job.env_set.OPTUNA_"


def resume_command(cfg: DictConfig) -> str | None:
    """The command that resumes this run in its own directory from its ``last.ckpt``
    (a sweep trial's: as a plain run, without the overrides that tie it to its trial)."""
    output_dir = Path(cfg.paths.output_dir)
    last = output_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    keep = [
        arg
        for arg in sys.argv[1:]
        if not arg.startswith(("ckpt_path=", "hydra.run.dir=", "-"))
        and not arg.lstrip("+").startswith(TRIAL_OVERRIDE)
    ]
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "train.py"
    words = ["python", f"src/{script}", *keep, f"ckpt_path={last}", f"hydra.run.dir={output_dir}"]
    return " ".join(shlex.quote(word) for word in words)


def _ended(error: BaseException, cfg: DictConfig) -> dict[str, Any]:
    """The status of a run that ended with ``error``."""
    from src.callbacks.divergence import DivergedError

    if isinstance(error, DivergedError):
        return {"status": "diverged", "epoch": error.epoch, "step": error.step, "error": str(error)}
    if isinstance(error, Exception) and not isinstance(error, DiskFullError):
        return {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    status: dict[str, Any] = {"status": "interrupted", "error": type(error).__name__}
    if isinstance(error, DiskFullError):
        status = {"status": "failed", "error": str(error)}
    command = resume_command(cfg)
    if command:
        status["resume"] = command
        note = sweep_trial_note()
        print(f"{note}Resume this run with:\n  {command}", file=sys.stderr, flush=True)
    return status


def sweep_trial_note() -> str:
    """For a job of an Optuna sweep: what the resume command does and does not do."""
    from hydra_plugins.optuna_study_sweeper._env import STUDY_ENV, TRIAL_ENV

    trial, study = os.environ.get(TRIAL_ENV), os.environ.get(STUDY_ENV)
    if not trial or not study:
        return ""
    return (
        f"This run is trial {trial} of Optuna study {study}, which the sweep records as "
        "failed. To continue the study, run the sweep's command again: it adds new "
        "trials. The command below only finishes this run's training, as a plain run that "
        "reports nothing to the study.\n"
    )


def _undo_failed_resume(cfg: DictConfig) -> None:
    """A resume into the run's own directory that failed before it saved a checkpoint
    leaves the run as it was (``src.utils.run_dir.undo_failed_resume``), and says so."""
    from src.utils.run_dir import undo_failed_resume

    run_dir = Path(cfg.paths.output_dir)
    entry = undo_failed_resume(run_dir)
    if entry is not None:
        print(
            f"This resume stopped before it saved a checkpoint, so {run_dir} is left as it "
            "was: its saved config, run_status.json and run_metadata.json are again those "
            "of the training its checkpoints come from.",
            file=sys.stderr,
            flush=True,
        )


def task_wrapper(task: Callable[[DictConfig], tuple[dict, dict]]) -> Callable:
    """Record how the task ended in ``<run>/run_status.json`` (see the module docstring),
    log the output directory, and close W&B runs if any. A SIGTERM (Lightning's
    ``SIGTERMException``, which would exit 0) exits with status 143, a Ctrl-C (which Lightning
    ends with exit status 1, recorded as ``SystemExit``) with 130, as ``KeyboardInterrupt``."""

    @functools.wraps(task)
    def wrap(cfg: DictConfig) -> tuple[dict, dict]:
        write_status(cfg.paths.output_dir, {"status": "running"})
        status: dict[str, Any] = {"status": "interrupted"}
        failing = False
        try:
            metric_dict, object_dict = task(cfg)
            metrics = {k: float(v) for k, v in sorted(metric_dict.items())}
            status = {"status": "finished", "metrics": metrics}
            return metric_dict, object_dict
        except BaseException as error:
            failing = True
            if isinstance(error, SystemExit) and isinstance(error.__context__, KeyboardInterrupt):
                # Lightning ends a Ctrl-C with sys.exit(1) inside its except KeyboardInterrupt
                status = _ended(error.__context__, cfg)
                raise SystemExit(130) from error.__context__  # the shell's code for SIGINT
            status = _ended(error, cfg)
            if type(error).__name__ == "SIGTERMException":
                raise SystemExit(143) from error
            raise
        finally:
            try:
                write_status(cfg.paths.output_dir, status)
            except DiskFullError as error:
                if not failing:
                    raise
                log.error(str(error))  # the run's own error stays the one raised
            if failing and current_rank() == 0:
                _undo_failed_resume(cfg)
            log.info(f"Output dir: {cfg.paths.output_dir}")
            wandb = sys.modules.get("wandb")
            if wandb is not None and wandb.run is not None:
                wandb.finish()

    return wrap
