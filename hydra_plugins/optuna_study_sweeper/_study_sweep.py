"""The search loop of ``OptunaStudySweeper`` (arguments: see ``optuna_study_sweeper.py``).

hydra-optuna-sweeper's loop, rewritten for current Optuna and with what the
template adds:

- current distribution classes and only the sampler settings a user changed
  (``_space``): no deprecation warning in a sweep;
- the storage opened and checked before any trial (``_storage``), a SQLite or
  journal file's folder made, heartbeats on RDB storages, and stale RUNNING
  trials of a killed sweep marked FAIL on resume (``retry_failed`` enqueues them);
- seeding: the sampler is seeded with ``hydra.sweeper.seed`` plus the number of
  trials the study already holds, so running the same command again adds new points;
- pruning: ``hydra/sweeper/pruner=...``; each job reports to its trial through
  the storage and stops when pruned; the trial is recorded PRUNED (``_trials``);
- a NaN or infinite metric makes a failed trial (the plugin crashed on it);
- a failure budget over the whole sweep, not per batch of ``n_jobs`` trials;
- Ctrl-C marks the running trials FAIL before the sweep exits;
- each trial's overrides and run directory as user attributes.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import warnings
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from optuna.pruners import NopPruner
from optuna.samplers import GridSampler
from optuna.trial import Trial, TrialState

from . import _storage, _trials
from ._space import SweepError, build_pruner, build_sampler, grid_choices, space_of

log = logging.getLogger(__name__)
# ask/tell with a heartbeat-enabled storage warns that heartbeats belong to study.optimize:
# this sweep sends them itself (_storage.Heartbeat), around the launcher
warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used", UserWarning)

__all__ = ["StudySweep", "SweepError", "build_sampler", "prepare_storage"]
prepare_storage = _storage.prepare_storage


class StudySweep:
    """The search loop (arguments: ``OptunaStudySweeper``'s)."""

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
        pruner_config: DictConfig | None = None,
        retry_failed: bool = False,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise SweepError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate} is not a share of the "
                "trials: set it between 0 (no failure allowed) and 1 (never stop)."
            )
        self.sampler_config, self.seed, self.pruner_config = sampler_config, seed, pruner_config
        self.directions = [_name(d) for d in (direction if _is_list(direction) else [direction])]
        self.storage, self.study_name = storage, study_name
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.allowed_failure_rate = max_failure_rate
        self.params = params
        self.extend_space = (
            instantiate({"_target_": custom_search_space, "_partial_": True})
            if custom_search_space
            else None
        )
        self.retry_failed = retry_failed
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.launched: list[Trial] = []
        self.pruner_json = json.dumps({"_target_": "optuna.pruners.NopPruner"})
        self.config: DictConfig | None = None
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        check_launcher(launcher)
        self.launcher = _trials.NonFiniteFails(launcher)

    def space(self, arguments: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
        """The searched distributions and fixed values: ``params`` then the command line."""
        params = [f"{k!s}={v}" for k, v in (self.params or {}).items()]
        return space_of([*params, *arguments])

    def grid(self, arguments: list[str]) -> dict[str, list[Any]]:
        """The search space as lists of values, for the grid sampler."""
        grid, continuous = {}, []
        for name, distribution in self.space(arguments)[0].items():
            try:
                grid[name] = grid_choices(distribution)
            except ValueError:
                continuous.append(name)
        if continuous:
            raise SweepError(
                f"hydra/sweeper/sampler=grid needs a finite set of values per parameter, but "
                f"{continuous} are intervals. Give them as choice(...) or range(...) "
                f"(hydra.sweeper.params.<key>=...), or pick another sampler."
            )
        return grid

    def sweep(self, arguments: list[str]) -> None:
        searched, fixed = self.space(arguments)
        pruner = self.checked_pruner()
        url = _storage.prepare_storage(self.storage)
        retry = _storage.retry if self.retry_failed else None
        storage = (
            _storage.open_storage(url, self.heartbeat_interval, self.grace_period, retry)
            if url
            else optuna.storages.InMemoryStorage()
        )
        self.opened = storage
        earlier = _storage.study_sizes(storage).get(self.study_name, 0) if self.study_name else 0
        sampler = self.sampler(arguments, earlier)  # a grid caps n_trials at its points
        if earlier:
            log.info(f"Study {self.study_name} holds {earlier} trials: adding {self.n_trials}.")
        study = optuna.create_study(
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            study_name=self.study_name,
            directions=self.directions,
            load_if_exists=True,
        )
        self.name_metrics(study)
        where = _storage.printable_url(url) if url else "memory"  # no password
        log.info(f"Study {study.study_name} in {where}: {type(sampler).__name__}, "
                 f"{type(pruner).__name__}, directions {self.directions}")  # fmt: skip
        stale = _storage.fail_stale_trials(study)
        if stale:
            again = " and enqueued again (retry_failed)" if retry else ""
            log.warning(f"Trials {stale} had stopped sending heartbeats: marked FAIL{again}.")
        self.launched = []
        if self.config is not None:  # what every job is told: composed into each job first
            with read_write(self.config), open_dict(self.config):
                shared = _trials.study_env(url, study, self.pruner_json)
                self.config.hydra.overrides.hydra.extend(shared)
        self.run(study, url, searched, fixed)
        self.check_failures(study, pending=[])
        self.write_results(study)

    def name_metrics(self, study: optuna.Study) -> None:
        """Store the objectives' names (optimized_metric) in a study that has none, so
        optuna-dashboard and Optuna's plots label their axes val/acc_best, not "Objective 0"."""
        metric = self.config.get("optimized_metric") if self.config is not None else None
        names = [str(m) for m in metric] if _is_list(metric) else [str(metric or "")]
        if study.metric_names is None and len(names) == len(self.directions) and all(names):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(names)

    def checked_pruner(self) -> Any:
        pruner = build_pruner(self.pruner_config) or NopPruner()
        settings = {"_target_": "optuna.pruners.NopPruner"}
        if self.pruner_config is not None:
            settings = OmegaConf.to_container(self.pruner_config, resolve=True)
        self.pruner_json = json.dumps(settings)  # the jobs build the same pruner
        if isinstance(pruner, NopPruner):
            return pruner
        if len(self.directions) > 1:
            raise SweepError(
                f"hydra/sweeper/pruner: Optuna prunes single-objective studies only, and this "
                f"one has {len(self.directions)} directions. Use hydra/sweeper/pruner=none."
            )
        if not self.storage:
            raise SweepError(
                "hydra/sweeper/pruner: trials report to the pruner through the study storage, "
                "and hydra.sweeper.storage is null. Set a storage (sqlite:///<file>)."
            )
        return pruner

    def sampler(self, arguments: list[str], earlier: int) -> Any:
        sampler = build_sampler(self.sampler_config, self.seed, offset=earlier)
        if isinstance(sampler, functools.partial) and sampler.func is GridSampler:
            grid = self.grid(arguments)
            points = math.prod(len(values) for values in grid.values())
            log.info(f"The grid has {points} points: running {min(points, self.n_trials)}.")
            self.n_trials = min(points, self.n_trials)
            return SweepGrid(grid, **sampler.keywords)
        return sampler

    def run(self, study: optuna.Study, url: str | None, searched: dict, fixed: dict) -> None:
        to_go = self.n_trials
        while to_go > 0:
            trials = [study.ask() for _ in range(min(to_go, self.n_jobs))]
            overrides = self.start(study, trials, searched, fixed)
            env = [_trials.trial_env(url, t) for t in trials]
            jobs = [[*line, *more] for line, more in zip(overrides, env, strict=True)]
            ids = [t._trial_id for t in trials]
            try:
                with _storage.Heartbeat(self.opened, ids, self.heartbeat_interval):
                    returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
            except BaseException:
                retry = _storage.retry if self.retry_failed else None
                _trials.close_interrupted(study, trials, retry)
                raise
            self.job_idx += len(returns)
            for trial, ret in zip(trials, returns, strict=True):
                _trials.record(study, trial, ret, len(self.directions))
            to_go -= len(trials)

    def start(
        self, study: optuna.Study, trials: list[Trial], searched: dict, fixed: dict
    ) -> list[list[str]]:
        """Each new trial's overrides: its suggested parameters plus the fixed values.

        Checks the failure budget first: the sweep stops before launching more."""
        self.check_failures(study, pending=trials)
        self.launched.extend(trials)
        overrides = []
        for trial in trials:
            for name, distribution in searched.items():
                try:
                    trial._suggest(name, distribution)  # the plugin's way: no suggest_* per type
                except ValueError as error:  # the study holds the key with other values
                    study.tell(trial, state=TrialState.FAIL)
                    raise SweepError(
                        f"Study {study.study_name} already searched {name} over other values "
                        f"than {distribution} ({error}). Keep its values, or start a new study: "
                        "hydra.sweeper.study_name=<new name>."
                    ) from None
            if self.extend_space:
                self.extend_space(self.config, trial)
            line = [f"{k}={v}" for k, v in {**trial.params, **fixed}.items()]
            trial.set_user_attr("overrides", line)
            overrides.append(line)
        return overrides

    def check_failures(self, study: optuna.Study, pending: list[Trial]) -> None:
        """Stop the sweep once more of its trials failed than the budget allows.

        ``pending`` trials (asked for but not launched) are closed as failed, with
        the reason in their ``not_run`` user attribute, so none stays "running".
        """
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

    def write_results(self, study: optuna.Study) -> None:
        """``optimization_results.yaml`` in the sweep directory: the best trial(s)."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise SweepError(
                f"Study {study.study_name}: no trial has completed, so there is no best one. "
                "The 'Failed experiment' warnings above say why the trials failed."
            )
        if len(self.directions) == 1:
            best = study.best_trial
            results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            log.info(
                f"Best parameters: {best.params}; best value: {best.value} "
                f"({self.which(study, best)})"
            )
        else:
            front = [{"params": t.params, "values": t.values} for t in study.best_trials]
            results = {"name": "optuna", "solutions": front}
            jobs = self.jobs_by_trial()
            named = ", ".join(
                f"trial {t.number} (job {jobs[t.number]})"
                if t.number in jobs
                else f"trial {t.number} (an earlier sweep)"
                for t in sorted(study.best_trials, key=lambda t: t.number)
            )
            log.info(f"Number of Pareto solutions: {len(front)}: {named}")
        if self.config is not None:
            path = f"{self.config.hydra.sweep.dir}/optimization_results.yaml"
            OmegaConf.save(OmegaConf.create(results), path)

    def jobs_by_trial(self) -> dict[int, int]:
        """This sweep's job number of each trial it launched, by trial number."""
        return {trial.number: job for job, trial in enumerate(self.launched)}

    def which(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
        """Where the best trial ran: a job of this sweep, or an earlier sweep of the study."""
        jobs = self.jobs_by_trial()
        run_dir = trial.user_attrs.get("run_dir")
        where = f", {run_dir}" if run_dir else ""
        if trial.number in jobs:
            return f"trial {trial.number}, job {jobs[trial.number]} of this sweep{where}"
        return (
            f"trial {trial.number}: the best of study {study.study_name} over all its sweeps, "
            f"from an earlier one{where}"
        )


def check_launcher(launcher: Any) -> None:
    """Stop before the study is opened when the SLURM launcher cannot submit from here:
    submitit finds out only at the first batch (a traceback, "Could not detect srun"),
    after the batch's trials were created, which then read as interrupted."""
    try:
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
    except ImportError:
        return
    if isinstance(launcher, SlurmLauncher) and shutil.which("srun") is None:
        raise SweepError(
            "hydra/launcher=slurm_* submits each trial as a SLURM job, and this machine has "
            "no SLURM (no srun on its PATH). Start the search on the cluster's login node (or "
            "in a small job there), or run the trials here: leave out hydra/launcher, or "
            "hydra/launcher=parallel for several at once."
        )


def _name(direction: Any) -> str:
    """``maximize``/``minimize``, from a string or the plugin's ``Direction`` enum."""
    return str(getattr(direction, "name", direction))


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple) or OmegaConf.is_list(value)


class SweepGrid(GridSampler):
    """Optuna's grid sampler, minus the ``study.stop()`` it calls on the last point.

    ``stop`` raises outside ``study.optimize``, which the sweep does not use;
    ``n_trials`` is capped at the number of grid points instead.
    """

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        pass
