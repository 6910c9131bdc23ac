"""Wrong types and ranges in the main config groups stop the run at once, naming the key
and what it expects, before Lightning is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from src.utils.config_checks import check_config
from src.utils.errors import UserInputError
from tests.conftest import ROOT, compose_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=abc", "data.batch_size='abc' must be an integer >= 1"),
        ("data.batch_size=0", "data.batch_size=0 must be an integer >= 1"),
        ("data.batch_size=2.5", "data.batch_size=2.5 must be an integer >= 1"),
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc' must be an integer >= 1"),
        ("trainer.max_epochs=-5", "trainer.max_epochs=-5 must be an integer >= 1 (or -1"),
        ("model.optimizer.lr=-1", "model.optimizer.lr=-1 must be a number >= 0"),
        ("model.optimizer.lr=fast", "model.optimizer.lr='fast' must be a number >= 0"),
        ("++trainer.limit_train_batches=1.5", "must be a count or a fraction 0..1"),
        ("trainer.accumulate_grad_batches=0", "must be an integer >= 1"),
        ("seed=abc", "seed='abc' must be an integer"),
        ("data.pin_memory=maybe", "data.pin_memory='maybe' must be true or false"),
    ],
)
def test_wrong_values_are_named(override: str, message: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [override], tmp_path)
    with pytest.raises(UserInputError, match="for example") as error:
        check_config(cfg)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["trainer.max_epochs=-1", "seed=null", "++trainer.limit_train_batches=0.25"],
        ["experiment=digits_cnn", "model/optimizer=sgd", "model.optimizer.momentum=0.5"],
        ["experiment=vimh_cnn"],
        ["experiment=diabetes_mlp", "data.batch_size=8"],
    ],
)
def test_good_configs_pass(overrides: list[str], tmp_path: Path) -> None:
    check_config(compose_config("train.yaml", overrides, tmp_path))


def test_every_wrong_value_in_one_message(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["data.batch_size=abc", "model.optimizer.lr=-1"], tmp_path)
    with pytest.raises(UserInputError) as error:
        check_config(cfg)
    assert "data.batch_size" in str(error.value) and "model.optimizer.lr" in str(error.value)


def test_cli_stops_before_importing_lightning() -> None:
    code = (
        "import runpy, sys; sys.argv = ['src/train.py', 'data.batch_size=abc'];\n"
        "try:\n    runpy.run_path('src/train.py', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    print('EXIT', stop.code, 'lightning' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "EXIT 1 False" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "data.batch_size='abc' must be an integer >= 1" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_multirun_job_with_a_wrong_value_is_recorded_failed(tmp_path: Path) -> None:
    """Hydra makes a multirun job's directory before the job runs: a job the checks refuse
    says why in its run_status.json (it was a run of unknown status, listed by inspect_runs)."""
    import json

    from tests.conftest import run_cli

    done = run_cli(
        "train.py", "-m", "model.optimizer.lr=0.01,-1", "debug=fdr", f"paths.log_dir={tmp_path}"
    )
    assert "model.optimizer.lr=-1 must be a number >= 0" in done.stderr
    (multirun,) = tmp_path.glob("*/multiruns/*")
    statuses = [json.loads((multirun / job / "run_status.json").read_text()) for job in "01"]
    assert statuses[0]["status"] == "finished"
    assert statuses[1]["status"] == "failed" and "lr=-1" in statuses[1]["error"]
