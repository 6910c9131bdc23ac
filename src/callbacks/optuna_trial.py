"""A sweep trial's link to its Optuna study: report, prune, record where the run is.

The Optuna sweeper (``hydra/sweeper=optuna_study``) tells each job its trial in
environment variables (``hydra_plugins/optuna_study_sweeper/_trials.py``);
``trial_callbacks`` adds this callback when they are set, whatever the callbacks
config says. After every validation epoch the job reports ``optimized_metric`` to
its trial and asks the study's pruner; a pruned trial stops training (as early
stopping does: the run ends cleanly, checkpoints and status written) and is marked
with the ``pruned_at_epoch`` user attribute, which the sweeper reads to record it PRUNED;
``pruned.json`` in the run directory says so to the multirun summary.

Not optuna-integration's ``PyTorchLightningPruningCallback``: it raises
``TrialPruned`` from inside ``fit``, which the run records as a crash, and it
needs the ``Trial`` object of the sweeper's process, which a job launched
elsewhere (joblib worker, SLURM node) does not have.
"""

from __future__ import annotations

import json
import os
from typing import Any

from lightning import Callback, LightningModule, Trainer
from omegaconf import DictConfig

from hydra_plugins.optuna_study_sweeper._env import (
    PRUNED_ATTR,
    PRUNER_ENV,
    STORAGE_ENV,
    STUDY_ENV,
    TRIAL_ENV,
)
from src.utils.atomic import write_json
from src.utils.errors import MetricNotLoggedError, UserInputError
from src.utils.logging_utils import RankedLogger
from src.utils.multirun_summary import PRUNED_FILE, pruned_after

log = RankedLogger(__name__)


def trial_callbacks(cfg: DictConfig) -> list[Callback]:
    """``[OptunaTrial]`` in a job the Optuna sweeper launched, ``[]`` anywhere else."""
    if not all(os.environ.get(k) for k in (STORAGE_ENV, STUDY_ENV, TRIAL_ENV)):
        return []
    return [
        OptunaTrial(
            storage=os.environ[STORAGE_ENV],
            study_name=os.environ[STUDY_ENV],
            trial_number=int(os.environ[TRIAL_ENV]),
            monitor=cfg.get("optimized_metric"),
            pruner=json.loads(os.environ.get(PRUNER_ENV) or "null"),
            run_dir=str(cfg.paths.output_dir),
        )
    ]


class OptunaTrial(Callback):
    """Report ``monitor`` to trial ``trial_number`` each validation epoch; stop when pruned.

    Args:
        storage: the study storage URL (as the sweeper's ``hydra.sweeper.storage``).
        study_name: the study.
        trial_number: this job's trial in it.
        monitor: ``optimized_metric``; a list of several (multi-objective) is not
            reported (Optuna prunes single objectives only).
        pruner: the pruner's settings (``_target_`` in ``optuna.pruners``); null: none.
        run_dir: the run directory, recorded on the trial.
    """

    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_number: int,
        monitor: Any,
        pruner: dict[str, Any] | None,
        run_dir: str,
    ) -> None:
        target = str((pruner or {}).get("_target_", "optuna.pruners.NopPruner"))
        if not target.startswith("optuna.pruners."):
            raise UserInputError(f"{PRUNER_ENV}: {target} is not one of Optuna's pruners.")
        self.storage, self.study_name, self.number = storage, study_name, trial_number
        self.monitor = monitor if isinstance(monitor, str) else None
        self.pruner_settings = pruner
        self.prunes = target != "optuna.pruners.NopPruner"
        self.run_dir = run_dir
        self.trial: Any = None
        self.detached = False  # the trial had finished: this run reports nothing to it
        self.reported: set[int] = set()

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or trainer.global_rank != 0 or self.trial is not None or self.detached:
            return
        import optuna

        from hydra_plugins.optuna_study_sweeper._space import build_pruner
        from hydra_plugins.optuna_study_sweeper._storage import open_storage

        pruner = build_pruner(self.pruner_settings) if self.pruner_settings else None
        study = optuna.load_study(
            study_name=self.study_name, storage=open_storage(self.storage), pruner=pruner
        )
        # the storage's id of the trial: Trial() takes it, the sweeper passes its number
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, self.number
        )
        state = study._storage.get_trial(trial_id).state
        if state.is_finished():  # e.g. a run resumed with an old command, after its sweep
            log.warning(
                f"Trial {self.number} of study {self.study_name} is already {state.name}: "
                "this run trains as a plain run and reports nothing to the study."
            )
            self.detached = True
            return
        self.trial = optuna.trial.Trial(study, trial_id)
        self.trial.set_user_attr("run_dir", self.run_dir)
        from lightning.pytorch.loggers import MLFlowLogger

        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                self.trial.set_user_attr("mlflow_run_id", str(logger.run_id))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.monitor is None:
            return
        epoch = trainer.current_epoch
        prune = False
        # a detached rank 0 still takes part in the broadcast below, as the other ranks do
        if trainer.global_rank == 0 and not self.detached and epoch not in self.reported:
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                if self.prunes:
                    logged = sorted(trainer.callback_metrics)
                    raise MetricNotLoggedError(
                        f"optimized_metric={self.monitor} was not logged by validation epoch "
                        f"{epoch}, and the pruner needs it after every one. Logged metrics: "
                        f"{logged}. Set optimized_metric to one of them, or "
                        "hydra/sweeper/pruner=none."
                    )
                return
            self.reported.add(epoch)
            self.trial.report(float(value), epoch)
            prune = self.trial.should_prune()
        prune = trainer.strategy.broadcast(prune, src=0)  # every rank stops together
        if prune:
            if trainer.global_rank == 0:
                self.trial.set_user_attr(PRUNED_ATTR, epoch)
                write_json(os.path.join(self.run_dir, PRUNED_FILE), {"epoch": epoch})
            log.info(f"Trial {self.number} {pruned_after(epoch)}.")
            trainer.should_stop = True
