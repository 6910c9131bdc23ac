"""What ``OptunaStudySweeper`` adds to hydra-optuna-sweeper's search loop.

The plugin's ``OptunaSweeperImpl`` asks the study for trials, launches them,
and records each result: a trial that raised or returned no number is recorded
as failed. This subclass adds

- NaN: a job whose metric is NaN or infinite (training that diverged) becomes a
  failed job; the plugin would crash the sweep on it (it reports the failure to
  Optuna together with the value, which Optuna refuses);
- storage: a SQLite file's folder is made before Optuna opens it;
- seeding: the sampler is built here, seeded with ``hydra.sweeper.seed`` plus
  the number of trials the study already holds, so that running the same
  command again continues the study with new points instead of repeating them;
- grid: optuna's grid sampler without the ``study.stop()`` that crashes the
  sweep when the last grid point fails, and a clear error for intervals;
- a failure budget over the whole sweep: the plugin judges each batch of
  ``n_jobs`` trials on its own (with one trial at a time, any failure either
  stops the sweep or none does); here the sweep stops as soon as more than
  ``max_failure_rate`` of its trials have failed.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import DictConfig, OmegaConf
from optuna.samplers import GridSampler
from optuna.trial import Trial, TrialState
from sqlalchemy.engine import make_url

from src.utils.errors import UserInputError

log = logging.getLogger(__name__)


class SweepError(UserInputError, CompactHydraException):
    """A search that cannot go on; Hydra prints its message alone (no traceback)."""


class StudySweep(OptunaSweeperImpl):
    """The plugin's search loop with the additions above (arguments: ``OptunaStudySweeper``)."""

    def __init__(
        self,
        *,
        sampler_config: DictConfig | None,
        seed: int | None,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None = None,
        custom_search_space: str | None = None,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise SweepError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate} is not a share of the "
                "trials: set it between 0 (no failure allowed) and 1 (never stop)."
            )
        # the plugin's per-batch check never fires: check_failures counts over the sweep
        super().__init__(
            sampler=None,  # built in sweep(), once the study's size is known
            direction=direction,
            storage=storage,
            study_name=study_name,
            n_trials=n_trials,
            n_jobs=n_jobs,
            max_failure_rate=1.0,
            search_space=None,  # the plugin's deprecated form of params
            custom_search_space=custom_search_space,
            params=params,
        )
        self.sampler_config = sampler_config
        self.seed = seed
        self.allowed_failure_rate = max_failure_rate
        self.launched: list[Trial] = []

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = NonFiniteFails(self.launcher)

    def sweep(self, arguments: list[str]) -> None:
        self.storage = prepare_storage(self.storage)
        earlier = trials_in_study(self.storage, self.study_name)
        if earlier:
            log.info(f"Study {self.study_name} holds {earlier} trials: adding {self.n_trials}.")
        self.sampler = build_sampler(self.sampler_config, self.seed, offset=earlier)
        if isinstance(self.sampler, functools.partial) and self.sampler.func is GridSampler:
            grid = self.grid(arguments)
            self.sampler = SweepGrid(grid)
            points = math.prod(len(values) for values in grid.values())
            log.info(f"The grid has {points} points: running {min(points, self.n_trials)}.")
            self.n_trials = min(points, self.n_trials)
        self.launched = []
        try:
            super().sweep(arguments)
        except ValueError:
            # the plugin's closing summary fails when no trial completed: say why instead
            self.check_failures(pending=[])
            raise
        self.check_failures(pending=[])

    def grid(self, arguments: list[str]) -> dict[str, list[Any]]:
        """The search space as lists of values, for the grid sampler."""
        self._process_searchspace_config()
        overrides = [*self._parse_sweeper_params_config(), *arguments]
        distributions, fixed = create_params_from_overrides(overrides)
        grid, continuous = {}, []
        for name, distribution in distributions.items():
            if name in fixed:
                continue
            try:
                grid[name] = self._to_grid_sampler_choices(distribution)
            except ValueError:
                continuous.append(name)
        if continuous:
            raise SweepError(
                f"hydra/sweeper/sampler=grid needs a finite set of values per parameter, but "
                f"{continuous} are intervals. Give them as choice(...) or range(...) "
                f"(hydra.sweeper.params.<key>=...), or pick another sampler."
            )
        return grid

    def _configure_trials(
        self,
        trials: list[Trial],
        search_space_distributions: dict[str, Any],
        fixed_params: dict[str, Any],
    ) -> Sequence[Sequence[str]]:
        # called with each batch of new trials, before they are launched
        self.check_failures(pending=trials)
        self.launched.extend(trials)
        return super()._configure_trials(trials, search_space_distributions, fixed_params)

    def check_failures(self, pending: list[Trial]) -> None:
        """Stop the sweep once more of its trials failed than the budget allows.

        ``pending`` trials (asked for but not launched) are closed as failed, with
        the reason in their ``not_run`` user attribute, so none stays "running".
        """
        if not self.launched:
            return
        study = self.launched[0].study
        ours = {trial.number for trial in self.launched}
        failed = [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.number in ours
        ]
        allowed = self.allowed_failure_rate * self.n_trials
        if len(failed) <= allowed:
            return
        reason = f"{len(failed)} of this sweep's trials failed, more than its budget of {allowed:g}"
        for trial in pending:
            trial.set_user_attr("not_run", f"the sweep stopped: {reason}")
            study.tell(trial, state=TrialState.FAIL)
        raise SweepError(
            f"Study {study.study_name}: {reason} (hydra.sweeper.max_failure_rate="
            f"{self.allowed_failure_rate} of {self.n_trials} trials); failed trials: {failed}. "
            "The 'Failed experiment' warnings above and each trial's run_status.json say why; "
            "fix the search space or raise hydra.sweeper.max_failure_rate."
        )


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
                job.return_value = ValueError(
                    f"optimized_metric is {value}: not a finite number (did training diverge?)"
                )
        return returns


class SweepGrid(GridSampler):
    """Optuna's grid sampler, minus the ``study.stop()`` it calls on the last point.

    ``stop`` raises outside ``study.optimize``, which the sweep does not use;
    ``n_trials`` is capped at the number of grid points instead.
    """

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        pass


def prepare_storage(storage: str | None) -> str | None:
    """The storage URL, with a SQLite file's folder made (SQLite does not make it)."""
    if not storage:
        return None
    url = make_url(str(storage))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return str(storage)
    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def trials_in_study(storage: str | None, study_name: str | None) -> int:
    """How many trials the named study already holds (0 when it does not exist yet)."""
    if storage is None or study_name is None:
        return 0
    summaries = optuna.get_all_study_summaries(storage=storage)
    return next((s.n_trials for s in summaries if s.study_name == study_name), 0)


def build_sampler(config: DictConfig, seed: int | None, offset: int) -> Any:
    """The sampler of ``config``, seeded with its own seed (or ``seed``) plus ``offset``.

    Every sampler but the grid has a ``seed``; the grid is returned as a partial
    the plugin completes with the search space.
    """
    settings = OmegaConf.to_container(config, resolve=True)
    if "seed" in settings:
        base = settings["seed"] if settings["seed"] is not None else seed
        settings["seed"] = None if base is None else base + offset
    return instantiate(settings)
