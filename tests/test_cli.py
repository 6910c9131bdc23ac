"""The command line as users type it: eval from a checkpoint or a run, multiruns,
and every kind of bad input (one clear message, exit status 1, nothing changed)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, run_cli

QUIET = ["extras.print_config=false", "+trainer.enable_progress_bar=false"]
FAST = ["trainer.max_epochs=2", "callbacks.rich_progress_bar=null", *QUIET]


def test_metrics(output: str) -> dict[str, float]:
    found = re.search(r"^Test metrics: (.*)$", output, re.MULTILINE)
    assert found, output[-3000:]
    return {k: float(v) for k, v in (item.split("=") for item in found.group(1).split(", "))}


test_metrics.__test__ = False  # a helper, not a test


def run_directory(output: str) -> Path:
    found = re.search(r"^Run directory: (.*)$", output, re.MULTILINE)
    assert found, output[-3000:]
    return Path(found.group(1))


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A short CLI training run of the CNN (not the eval config's default model)."""
    logs = tmp_path_factory.mktemp("logs")
    done = run_cli("train.py", "model=cnn", f"paths.log_dir={logs}", *FAST)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = run_directory(done.stdout)
    # Lightning's messages print once, through Hydra's handlers, and reach the run's log
    assert (done.stdout + done.stderr).count("GPU available:") == 1
    assert "GPU available:" in (run_dir / "train.log").read_text()
    return run_dir, test_metrics(done.stdout)


def test_the_train_module_imports_no_lightning() -> None:
    """A sweeper process that launches jobs elsewhere imports src/train.py but never trains."""
    code = (
        "import sys; import src.train; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'torch'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_eval_from_run_dir_rebuilds_the_model(cnn_run, tmp_path: Path) -> None:
    run_dir, trained = cnn_run
    done = run_cli("eval.py", f"run_dir={run_dir}", f"paths.log_dir={tmp_path}", *QUIET)
    assert done.returncode == 0, done.stderr[-3000:]
    # the run's best checkpoint, evaluated with its own data and model config
    assert test_metrics(done.stdout) == pytest.approx(trained, abs=1e-4)
    assert f"with the data and model of run {run_dir}" in done.stdout + done.stderr
    # no advice to add training callbacks (checkpointing, early stopping) to a test
    assert "callbacks used to create the checkpoint" not in done.stdout + done.stderr


def test_eval_from_ckpt_path(cnn_run, tmp_path: Path) -> None:
    run_dir, trained = cnn_run
    best = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    done = run_cli("eval.py", f"ckpt_path={best}", "model=cnn", f"paths.log_dir={tmp_path}", *QUIET)
    assert done.returncode == 0, done.stderr[-3000:]
    assert test_metrics(done.stdout) == pytest.approx(trained, abs=1e-4)
    # the log says whose data and model: the ones configured here, not the checkpoint's
    said = done.stdout + done.stderr
    assert f"Evaluating {best} with the data and model configured here" in said


def test_train_false_tests_a_checkpoint_and_succeeds(cnn_run, tmp_path: Path) -> None:
    """LHT's ``train=false ckpt_path=<ckpt>`` (train.yaml: "only test"): it tested the
    checkpoint, then exited 1 because the default optimized_metric (val/acc_best) needs
    a validation that a test-only run never does, and marked the run failed."""
    run_dir, trained = cnn_run
    best = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    done = run_cli(
        "train.py",
        "model=cnn",
        "train=false",
        f"ckpt_path={best}",
        f"paths.log_dir={tmp_path}",
        *FAST[1:],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert test_metrics(done.stdout) == pytest.approx(trained, abs=1e-4)
    status = json.loads((run_directory(done.stdout) / "run_status.json").read_text())
    assert status["status"] == "finished", status
    # a misspelt test metric still fails: only the metrics of fit are excused
    done = run_cli(
        "train.py",
        "model=cnn",
        "train=false",
        f"ckpt_path={best}",
        "optimized_metric=test/acx",
        f"paths.log_dir={tmp_path}",
        *FAST[1:],
    )
    assert_clear_failure(done, "optimized_metric=test/acx")


def assert_clear_failure(done, *phrases: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    for phrase in phrases:
        assert phrase in done.stderr, (phrase, done.stderr[-2000:])


def test_eval_without_a_model_makes_no_run(tmp_path: Path) -> None:
    """``python src/eval.py`` alone (LHT's eval.yaml required ckpt_path): one message, and
    no run directory; it printed the config tree and left an empty run in logs/eval/."""
    done = run_cli("eval.py", f"paths.log_dir={tmp_path}")
    assert_clear_failure(done, "run_dir=<training run> or ckpt_path=<file.ckpt>")
    assert not (tmp_path / "eval").exists(), sorted(tmp_path.rglob("*"))


def test_bad_ckpt_path_is_one_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ckpt"
    done = run_cli("eval.py", f"ckpt_path={missing}", f"paths.log_dir={tmp_path}")
    assert_clear_failure(done, f"Checkpoint {missing} does not exist")


def test_run_dir_without_config(cnn_run, tmp_path: Path) -> None:
    run_dir, _ = cnn_run
    fake = tmp_path / "not_a_run"
    (fake / "checkpoints").mkdir(parents=True)
    done = run_cli("eval.py", f"run_dir={fake}", f"paths.log_dir={tmp_path}")
    assert_clear_failure(done, "has no saved config", ".hydra/config.yaml")


def test_checkpoint_of_another_architecture(cnn_run, tmp_path: Path) -> None:
    run_dir, _ = cnn_run
    before = snapshot(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    # resuming the CNN's checkpoint into the default MLP
    done = run_cli("train.py", f"ckpt_path={last}", f"paths.log_dir={tmp_path}", *FAST[1:])
    assert_clear_failure(done, "another architecture", "net.")
    done = run_cli("eval.py", f"ckpt_path={last}", f"paths.log_dir={tmp_path}")
    assert_clear_failure(done, "another architecture")
    assert snapshot(run_dir) == before  # the run is untouched


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint at all")
    done = run_cli("eval.py", f"ckpt_path={broken}", f"paths.log_dir={tmp_path}")
    assert_clear_failure(done, f"Checkpoint {broken} cannot be read")
    assert broken.read_bytes() == b"not a checkpoint at all"


def test_batch_size_one_with_batchnorm(tmp_path: Path) -> None:
    done = run_cli("train.py", "data.batch_size=1", f"paths.log_dir={tmp_path}", *FAST[1:])
    assert_clear_failure(done, "data.batch_size=1", "BatchNorm")


def test_mnist_missing_offline(tmp_path: Path) -> None:
    done = run_cli(
        "train.py",
        "data=mnist",
        "data.download=false",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    )
    assert_clear_failure(done, "MNIST files are missing", "train-images-idx3-ubyte")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*-ubyte"))


def test_error_raised_while_instantiating_is_one_clear_message(tmp_path: Path) -> None:
    # the data module raises in its constructor: Hydra wraps that in an InstantiationException
    missing = tmp_path / "rows.csv"
    overrides = ("data=tabular", f"data.path={missing}", "data.target_columns=[y]")
    done = run_cli("train.py", *overrides, f"paths.log_dir={tmp_path}")
    assert_clear_failure(done, str(missing))
    assert "InstantiationException" not in done.stderr


def test_unknown_config_option(tmp_path: Path) -> None:
    done = run_cli("train.py", "model=no_such_model", f"paths.log_dir={tmp_path}")
    assert done.returncode == 1
    assert "Could not find 'model/no_such_model'" in done.stderr
    assert "Available options" in done.stderr


def test_multirun_over_two_learning_rates(tmp_path: Path) -> None:
    done = run_cli(
        "train.py",
        "-m",
        "model.optimizer.lr=0.001,0.003",
        f"hydra.sweep.dir={tmp_path}",
        "trainer.max_epochs=1",
        "extras.print_config=false",
        "callbacks.rich_progress_bar=null",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1"]
    for job, lr in zip(jobs, ("0.001", "0.003"), strict=True):
        overrides = (tmp_path / job / ".hydra" / "overrides.yaml").read_text()
        assert f"model.optimizer.lr={lr}" in overrides
        assert (tmp_path / job / "checkpoints" / "last.ckpt").is_file()
        assert (tmp_path / job / "csv" / "version_0" / "metrics.csv").is_file()


# experiments that need a base checkpoint or generated data first; tests/test_configs.py
# takes a real training step with each of them, and their own tests train them
NEEDS_PREPARATION = sorted(
    p.stem
    for p in Path(__file__).parents[1].joinpath("configs/experiment").glob("*.yaml")
    # LoRA trains a base run, VIMH generates a set (tested apart); the folder experiments
    # write their example folder on first use, here (tests/test_example_folders.py)
    if (p.stem.startswith(("lora_", "vimh_", "moog_")) or p.stem.endswith("_lora"))
    and p.stem != "lora_digits_base"
)


def test_every_experiment_in_one_multirun(tmp_path: Path) -> None:
    """`-m experiment=glob(*) debug=fdr`: each experiment runs one batch end to end."""
    from src.data.components.idx import digits_as_mnist, write_mnist_like

    images, labels = digits_as_mnist(70_000, seed=1)  # the size MNIST's split expects
    write_mnist_like(
        tmp_path / "data" / "MNIST" / "raw",
        (images[:60_000], labels[:60_000]),
        (images[60_000:], labels[60_000:]),
    )
    sweep = tmp_path / "sweep"
    done = run_cli(
        "train.py",
        "-m",
        f"experiment=glob(*,exclude=[{','.join(NEEDS_PREPARATION)}])",
        "debug=fdr",
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.sweep.dir={sweep}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    experiments = sorted(
        p.stem for p in Path("configs/experiment").glob("*.yaml") if p.stem not in NEEDS_PREPARATION
    )
    ran = sorted(
        re.search(r"experiment=(\S+)", (job / ".hydra" / "overrides.yaml").read_text()).group(1)
        for job in sweep.iterdir()
        if job.is_dir()
    )
    assert ran == experiments
    assert np.all([(job / "debug.log").is_file() for job in sweep.iterdir() if job.is_dir()])
