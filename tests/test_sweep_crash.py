"""Sweeps after a crash (issue 15, item 4): Ctrl-C marks the running trial FAIL before the
sweep exits; a sweep killed outright leaves its trial RUNNING, and the next sweep of the
study marks it FAIL once its heartbeat is older than the grace period, and, with
``hydra.sweeper.retry_failed=true``, runs its parameters again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from tests.conftest import ROOT, run_cli

QUIET = ["extras.print_config=false", "callbacks=none"]


def storage_of(log_dir: Path) -> str:
    return f"sqlite:///{log_dir}/optuna/optuna.db"


def start_long_sweep(log_dir: Path) -> subprocess.Popen:
    """A sweep whose first trial trains for minutes, in its own process group."""
    command = [
        sys.executable, str(ROOT / "src" / "train.py"), "hparams_search=digits_optuna",
        "hydra.sweeper.n_trials=2", "trainer.max_epochs=1000", f"paths.log_dir={log_dir}", *QUIET,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def wait_until_training(log_dir: Path, process: subprocess.Popen) -> optuna.Study:
    """The study once its first trial has reported an epoch."""
    for _ in range(600):
        assert process.poll() is None, process.communicate()[1][-3000:]
        if (log_dir / "optuna" / "optuna.db").is_file():
            try:
                study = optuna.load_study(study_name="digits_optuna", storage=storage_of(log_dir))
                if study.trials and study.trials[0].intermediate_values:
                    return study
            except (KeyError, sqlalchemy.exc.SQLAlchemyError):
                pass  # the sweep is creating the storage's tables or the study right now
        time.sleep(0.5)
    pytest.fail("the sweep's first trial did not report an epoch within 300 s")


@pytest.mark.slow
def test_ctrl_c_marks_the_running_trial_failed(tmp_path: Path) -> None:
    sweep = start_long_sweep(tmp_path)
    wait_until_training(tmp_path, sweep)
    os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode != 0
    study = optuna.load_study(study_name="digits_optuna", storage=storage_of(tmp_path))
    (trial,) = study.trials  # the second was never asked for
    assert trial.state == TrialState.FAIL, err[-2000:]
    assert trial.user_attrs["fail_reason"].startswith("interrupted")


@pytest.mark.slow
def test_a_killed_sweeps_trial_is_failed_and_retried_on_resume(tmp_path: Path) -> None:
    sweep = start_long_sweep(tmp_path)
    wait_until_training(tmp_path, sweep)
    os.killpg(sweep.pid, signal.SIGKILL)  # nothing runs after this: no handler, no cleanup
    sweep.wait(timeout=60)
    study = optuna.load_study(study_name="digits_optuna", storage=storage_of(tmp_path))
    (zombie,) = study.trials
    assert zombie.state == TrialState.RUNNING  # what the kill leaves behind
    time.sleep(3)  # older than the grace period below
    done = run_cli(
        "train.py",
        "hparams_search=digits_optuna",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.grace_period=2",
        "hydra.sweeper.retry_failed=true",
        "debug=fdr",
        f"paths.log_dir={tmp_path}",
        *QUIET,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Trials [0] had stopped sending heartbeats: marked FAIL and enqueued again" in (
        done.stdout + done.stderr
    )
    study = optuna.load_study(study_name="digits_optuna", storage=storage_of(tmp_path))
    first, retried = study.trials
    assert first.state == TrialState.FAIL
    assert retried.state == TrialState.COMPLETE and retried.user_attrs["retry_of"] == 0
    assert retried.params == first.params  # the same point, run again


def test_an_interrupted_trials_resume_command_is_a_plain_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The printed command drops the sweeper's internal OPTUNA_* overrides (the trial is
    FAIL by then: reporting into it crashed) and says how to continue the study instead."""
    from omegaconf import OmegaConf

    from src.utils.run_status import _ended

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").touch()
    env = {"OPTUNA_STORAGE": "sqlite:///x.db", "OPTUNA_STUDY_NAME": "s", "OPTUNA_TRIAL_NUMBER": "2"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    argv = [f"++hydra.job.env_set.{key}='{value}'" for key, value in env.items()]
    monkeypatch.setattr(sys, "argv", ["src/train.py", "hparams_search=x", "lr=1", *argv])
    status = _ended(KeyboardInterrupt(), OmegaConf.create({"paths": {"output_dir": tmp_path}}))
    assert status["resume"] == (
        f"python src/train.py hparams_search=x lr=1 ckpt_path={tmp_path}/checkpoints/last.ckpt "
        f"hydra.run.dir={tmp_path}"
    )
    err = capsys.readouterr().err
    assert "trial 2 of Optuna study s" in err and "run the sweep's command again" in err


def test_a_run_of_a_finished_trial_trains_and_leaves_the_trial_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume command printed before the fix still holds the OPTUNA_* overrides: its run
    trains as a plain run instead of crashing in set_user_attr on the FAIL trial."""
    from src.train import train
    from tests.conftest import compose_config

    (tmp_path / "optuna").mkdir()
    storage = storage_of(tmp_path)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    trial = study.ask()
    trial.set_user_attr("fail_reason", "interrupted: the sweep was stopped while it ran")
    study.tell(trial, state=TrialState.FAIL)
    for key, value in {
        "OPTUNA_STORAGE": storage,
        "OPTUNA_STUDY_NAME": "s",
        "OPTUNA_TRIAL_NUMBER": str(trial.number),
        "OPTUNA_PRUNER": '{"_target_": "optuna.pruners.MedianPruner"}',
    }.items():
        monkeypatch.setenv(key, value)
    tiny = [
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
    ]
    cfg = compose_config("train.yaml", [*tiny, "test=false", *QUIET], tmp_path)
    train(cfg)
    after = study.trials[trial.number]
    assert after.state == TrialState.FAIL and not after.intermediate_values
    assert "run_dir" not in after.user_attrs
