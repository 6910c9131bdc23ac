"""Pruning inside Hydra sweeps (``hydra/sweeper/pruner=...``).

A job learns its trial from environment variables the sweeper sets, reports
``optimized_metric`` to it through the study storage after each validation
epoch, and stops when the study's pruner says so; the sweeper records it PRUNED.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hydra_plugins.optuna_study_sweeper._space import SweepError, build_pruner
from hydra_plugins.optuna_study_sweeper._trials import record
from src.train import train
from src.utils.multirun_summary import PRUNED_FILE, RESULT_FILE, pruned_after
from tests.conftest import compose_config, run_cli

TINY = [
    "+trainer.limit_train_batches=4",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "callbacks=none",
    "extras.print_config=false",
]
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_every_pruner_config_builds_its_pruner(name: str, tmp_path: Path) -> None:
    overrides = ["hparams_search=digits_optuna", f"hydra/sweeper/pruner={name}"]
    cfg = compose_config("train.yaml", overrides, tmp_path)
    assert isinstance(build_pruner(cfg.hydra.sweeper.pruner), PRUNERS[name])


def test_pruner_arguments_that_do_not_exist_are_named(tmp_path: Path) -> None:
    overrides = [
        "hparams_search=digits_optuna",
        "hydra/sweeper/pruner=median",
        "+hydra.sweeper.pruner.patience=3",
    ]
    cfg = compose_config("train.yaml", overrides, tmp_path)
    with pytest.raises(SweepError, match=r"MedianPruner takes no \['patience'\].*n_startup_trials"):
        build_pruner(cfg.hydra.sweeper.pruner)
    bad = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": -1}
    with pytest.raises(SweepError, match="MedianPruner refused its settings: .*n_startup_trials"):
        build_pruner(bad)
    with pytest.raises(SweepError, match=r"_target_=optuna.pruners.Nope: no such class"):
        build_pruner({"_target_": "optuna.pruners.Nope"})


def test_a_job_reports_to_its_trial_and_stops_when_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two finished trials reached 0.99 at every epoch: the median pruner stops a third,
    real run of the digits MLP after its first epoch, and the sweeper records it PRUNED."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for _ in range(2):
        study.add_trial(
            create_trial(
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                value=0.99,
                intermediate_values={epoch: 0.99 for epoch in range(4)},
            )
        )
    trial = study.ask()
    pruner = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2}
    for key, value in {
        "OPTUNA_STORAGE": storage,
        "OPTUNA_STUDY_NAME": "s",
        "OPTUNA_TRIAL_NUMBER": str(trial.number),
        "OPTUNA_PRUNER": json.dumps(pruner),
    }.items():
        monkeypatch.setenv(key, value)
    cfg = compose_config("train.yaml", ["trainer.max_epochs=4", "logger=mlflow", *TINY], tmp_path)
    metrics, objects = train(cfg)
    assert objects["trainer"].current_epoch == 1  # one epoch of four, then stopped
    reported = study.trials[trial.number]
    assert list(reported.intermediate_values) == [0]
    assert reported.intermediate_values[0] == pytest.approx(float(metrics["val/acc_best"]))
    assert reported.user_attrs["pruned_at_epoch"] == 0
    assert reported.user_attrs["run_dir"] == str(tmp_path)
    assert json.loads((tmp_path / PRUNED_FILE).read_text()) == {"epoch": 0}  # for the summary
    (mlflow_logger,) = objects["logger"]
    assert reported.user_attrs["mlflow_run_id"] == mlflow_logger.run_id  # the study links the run

    done = JobReturn(status=JobStatus.COMPLETED, _return_value=float(metrics["val/acc_best"]))
    assert record(study, trial, done, n_objectives=1) == TrialState.PRUNED
    assert study.trials[trial.number].state == TrialState.PRUNED


def sweep_command(log_dir: Path, *more: str) -> list[str]:
    """Eight random-sampled SGD learning rates on digits, 4 epochs each, median pruner."""
    return [
        "hparams_search=digits_optuna",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.params={model.optimizer.lr:'tag(log, interval(0.00001, 0.1))'}",
        "model/optimizer=sgd",
        "trainer.max_epochs=4",
        f"paths.log_dir={log_dir}",
        *TINY,
        *more,
    ]


def check_pruned_sweep(log_dir: Path) -> None:
    study = optuna.load_study(
        study_name="digits_optuna", storage=f"sqlite:///{log_dir}/optuna/optuna.db"
    )
    by_state = {s: [t for t in study.trials if t.state == s] for s in TrialState}
    assert len(study.trials) == 8 and not by_state[TrialState.FAIL]
    pruned, complete = by_state[TrialState.PRUNED], by_state[TrialState.COMPLETE]
    assert pruned and len(complete) >= 2
    assert any(t.user_attrs["pruned_at_epoch"] < 3 for t in pruned)  # epochs saved
    for trial in complete:  # every epoch reported; the last report is the trial's value
        assert list(trial.intermediate_values) == [0, 1, 2, 3]
        assert trial.intermediate_values[3] == trial.value
        result = json.loads((Path(trial.user_attrs["run_dir"]) / RESULT_FILE).read_text())
        assert result["status"] == "finished"
    for trial in pruned:  # stopped at the epoch the pruner judged, below the median there
        epoch = trial.user_attrs["pruned_at_epoch"]
        assert max(trial.intermediate_values) == epoch
        run_dir = Path(trial.user_attrs["run_dir"])
        status = json.loads((run_dir / "run_status.json").read_text())
        assert status["status"] == "finished"  # stopped as early stopping does, not crashed
        # the end-of-multirun table lists it as pruned, below the finished jobs
        assert json.loads((run_dir / RESULT_FILE).read_text())["status"] == "pruned"
        summary = (run_dir.parent / "multirun_summary.md").read_text()
        assert f"| {pruned_after(epoch)} |" in summary
        # Lightning's own checkpoint (callbacks=none) names the last epoch trained
        assert [p.name.split("-")[0] for p in run_dir.rglob("epoch=*.ckpt")] == [f"epoch={epoch}"]
    for trial in study.trials:
        assert Path(trial.user_attrs["run_dir"]).is_relative_to(log_dir / "train" / "multiruns")
        assert "model/optimizer=sgd" in trial.user_attrs["overrides"]


@pytest.mark.slow
def test_pruning_sweep_with_the_basic_launcher(tmp_path: Path) -> None:
    done = run_cli("train.py", *sweep_command(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_pruned_sweep(tmp_path)


@pytest.mark.slow
def test_pruning_sweep_with_two_joblib_workers(tmp_path: Path) -> None:
    done = run_cli(
        "train.py",
        *sweep_command(tmp_path, "hydra/launcher=parallel", "hydra.sweeper.n_jobs=2"),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_pruned_sweep(tmp_path)
