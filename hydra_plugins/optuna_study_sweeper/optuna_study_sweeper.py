"""The template's Optuna sweeper (``hydra/sweeper=optuna_study``).

Hydra finds sweepers only in the ``hydra_plugins`` namespace package, hence this
top-level folder. This module stays light (Hydra imports it at every start);
the work is in ``_study_sweep``, imported when a search runs.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaStudySweeper(Sweeper):
    """hydra-optuna-sweeper's search on current Optuna: a study that persists, pruning,
    failures it survives, trials a crash left behind cleaned up.

    Args:
        sampler: the sampler's config (``hydra/sweeper/sampler=...``), built at each sweep.
        seed: seeds the sampler when its own ``seed`` is null; a study that already
            holds trials adds their count, so a resumed study draws new points.
        direction: ``maximize``/``minimize``, or a list of them for several objectives.
        storage: the study's database URL; a SQLite file's folder is made if missing.
        study_name: the study in the storage; an existing one is continued.
        n_trials: trials this sweep adds to the study.
        n_jobs: trials launched at once.
        max_failure_rate: the share of this sweep's trials that may fail (raise, or
            return NaN); the sweep stops with an error as soon as more have failed.
        params: the search space, as Hydra sweep overrides per key.
        custom_search_space: dotted path of a ``function(cfg, trial)`` adding parameters.
        pruner: the pruner's config (``hydra/sweeper/pruner=...``); jobs report to it.
        retry_failed: enqueue again the parameters of trials that a dead or interrupted
            sweep left behind (marked FAIL).
        heartbeat_interval: seconds between a running trial's heartbeats (RDB storages);
            null: no heartbeat, stale trials are not detected.
        grace_period: seconds without a heartbeat after which a running trial is stale
            (null: twice the interval).
    """

    def __init__(
        self,
        sampler: DictConfig,
        seed: int | None,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None = None,
        custom_search_space: str | None = None,
        pruner: DictConfig | None = None,
        retry_failed: bool = False,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
    ) -> None:
        from ._study_sweep import StudySweep

        self.sweeper = StudySweep(
            sampler_config=sampler,
            seed=seed,
            direction=direction,
            storage=storage,
            study_name=study_name,
            n_trials=n_trials,
            n_jobs=n_jobs,
            max_failure_rate=max_failure_rate,
            params=params,
            custom_search_space=custom_search_space,
            pruner_config=pruner,
            retry_failed=retry_failed,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
        )

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.sweeper.sweep(arguments)
