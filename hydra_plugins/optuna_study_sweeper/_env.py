"""The environment variables that tell a sweep's job its Optuna trial (no imports: the
job side, ``src/callbacks/optuna_trial.py``, reads them in every run)."""

STORAGE_ENV = "OPTUNA_STORAGE"  # the study storage URL, as the sweeper opened it
STUDY_ENV = "OPTUNA_STUDY_NAME"  # the study
TRIAL_ENV = "OPTUNA_TRIAL_NUMBER"  # the job's trial in it
PRUNER_ENV = "OPTUNA_PRUNER"  # the pruner's settings as JSON, resolved by the sweeper
PRUNED_ATTR = "pruned_at_epoch"  # the user attribute a pruned job sets on its trial
