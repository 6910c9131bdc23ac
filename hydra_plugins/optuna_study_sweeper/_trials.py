"""One trial's side of a sweep: what its job is told, and how its outcome is recorded.

The job learns its trial from four environment variables, set by Hydra in the
job's own process (``hydra.job.env_set``) whatever launcher runs it (in-process,
joblib workers, SLURM nodes): the storage URL, the study name, the trial number
and the pruner's settings.
Through the storage it reports its ``optimized_metric`` after each validation
epoch and records its run directory and MLflow run id
(``src/callbacks/optuna_trial.py``); when the pruner stops it, it sets the
``pruned_at_epoch`` user attribute, and the sweep records the trial PRUNED.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from omegaconf import OmegaConf
from optuna.trial import Trial, TrialState

from src.utils.errors import MetricNotLoggedError

from ._env import PRUNED_ATTR, PRUNER_ENV, STORAGE_ENV, STUDY_ENV, TRIAL_ENV
from ._space import SweepError

log = logging.getLogger(__name__)


def quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def study_env(url: str | None, study: optuna.Study, pruner: str) -> list[str]:
    """The Hydra overrides every job of the sweep shares (none for an in-memory study):
    the storage, the study and the pruner, and the trial number's key, set per job by
    ``trial_env``. They go to the sweep's ``hydra.overrides.hydra``, which every job's
    config is composed with first: a job's own ``hydra.``-prefixed override then needs no
    ``++`` (the key exists), and launchers leave ``hydra.`` overrides out of the line they
    print per job, which showed these four at full length (a PostgreSQL password too)."""
    if url is None:
        return []
    env = {STORAGE_ENV: url, STUDY_ENV: study.study_name, PRUNER_ENV: pruner, TRIAL_ENV: ""}
    return [f"++hydra.job.env_set.{key}={quoted(value)}" for key, value in env.items()]


def trial_env(url: str | None, trial: Trial) -> list[str]:
    """The override that tells a job its trial (none for an in-memory study)."""
    return [] if url is None else [f"hydra.job.env_set.{TRIAL_ENV}={quoted(str(trial.number))}"]


def job_error(ret: JobReturn) -> BaseException | None:
    """What a job raised (None when it completed)."""
    return None if ret.status == JobStatus.COMPLETED else ret._return_value


def objective_values(value: Any, n_objectives: int) -> list[float]:
    """A job's return as one float per objective (ValueError when it is not)."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"optimized_metric gave {value!r}, not a number per objective") from None
    if len(floats) != n_objectives:
        raise ValueError(
            f"optimized_metric gave {len(floats)} values for {n_objectives} directions"
        )
    return floats


def record(study: optuna.Study, trial: Trial, ret: JobReturn, n_objectives: int) -> TrialState:
    """Tell the study how the trial's job ended: COMPLETE, PRUNED or FAIL."""
    frozen = study._storage.get_trial(trial._trial_id)  # what the job wrote there
    run_dir = ret.hydra_cfg and OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir")
    if run_dir and "run_dir" not in frozen.user_attrs:  # a job that failed before fit
        trial.set_user_attr("run_dir", str(run_dir))
    error = job_error(ret)
    pruned = frozen.user_attrs.get(PRUNED_ATTR) is not None
    if pruned and (error is None or isinstance(error, NonFiniteValue)):
        study.tell(trial, state=TrialState.PRUNED)  # its value: the last one reported
        return TrialState.PRUNED
    if error is None:
        try:
            study.tell(trial, objective_values(ret.return_value, n_objectives))
            return TrialState.COMPLETE
        except ValueError as refused:
            error = refused
    trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}"[:1000])
    study.tell(trial, state=TrialState.FAIL)
    log.warning(f"Failed experiment: {error}")
    if isinstance(error, MetricNotLoggedError):
        # every other trial would fail the same way: stop at the first
        raise SweepError(f"Trial {trial.number} failed, and so would every trial: {error}")
    return TrialState.FAIL


def close_interrupted(study: optuna.Study, trials: Sequence[Trial], retry: Any) -> None:
    """Ctrl-C (or a kill the sweep can catch) during a launch: its trials become FAIL."""
    for trial in trials:
        frozen = study._storage.get_trial(trial._trial_id)
        if frozen.state != TrialState.RUNNING:
            continue
        trial.set_user_attr("fail_reason", "interrupted: the sweep was stopped while it ran")
        study.tell(trial, state=TrialState.FAIL)
        log.warning(f"Trial {trial.number} interrupted: marked FAIL.")
        if retry is not None:
            retry(study, study._storage.get_trial(trial._trial_id))


class NonFiniteValue(ValueError):
    """A job's metric was NaN or infinite."""


class NonFiniteFails:
    """A launcher's jobs, with those that returned a NaN or infinite value marked failed."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        returns = self.launcher.launch(job_overrides, initial_job_idx)
        for job in returns:
            if job.status != JobStatus.COMPLETED:
                continue
            value = job.return_value
            values = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                job.status = JobStatus.FAILED
                job.return_value = NonFiniteValue(
                    f"optimized_metric is {value}: not a finite number (did training diverge?)"
                )
        return returns
