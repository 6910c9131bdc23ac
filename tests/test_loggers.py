"""Every logger works offline and receives the run's hyperparameters and tags."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from src.train import train
from tests.conftest import ROOT, compose_config, end_process_group, run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_many_loggers_all_get_metrics_hparams_and_tags(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml", ["logger=many_loggers", "trainer.max_epochs=1", "tags=[probe]"], tmp_path
    )
    train(cfg)
    hparams = yaml.safe_load((tmp_path / "csv" / "version_0" / "hparams.yaml").read_text())
    assert hparams["tags"] == ["probe"] and hparams["model"]["optimizer"]["lr"] == 0.001
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and any(e.stat().st_size > 0 for e in events)
    assert (tmp_path / "mlflow" / "mlflow.db").is_file()


@pytest.mark.slow
def test_mlflow_server_shows_the_run(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml", ["logger=mlflow", "trainer.max_epochs=2", "tags=[served]"], tmp_path
    )
    metrics, _ = train(cfg)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow/mlflow.db",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its uvicorn and job-executor children end with it
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        # mlflow 3.17's server (uvicorn, job executor) takes over a minute on a busy 2-core box
        for _ in range(480):
            try:
                experiment = api(base, "experiments/get-by-name?experiment_name=train")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow server did not answer within 240 s")
        runs = api(
            base, "runs/search", {"experiment_ids": [experiment["experiment"]["experiment_id"]]}
        )
        (run,) = runs["runs"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params["model/optimizer/lr"] == "0.001"
        assert params["tags"] == "['served']"
        logged = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert logged["val/acc"] == pytest.approx(float(metrics["val/acc"]))
        assert logged["test/acc"] == pytest.approx(float(metrics["test/acc"]))
    finally:
        end_process_group(server)


@pytest.mark.slow
def test_wandb_offline_one_run_per_multirun_job(tmp_path: Path) -> None:
    done = run_cli(
        "train.py",
        "-m",
        "logger=wandb",
        "model.optimizer.lr=0.001,0.002",
        "trainer.max_epochs=1",
        "callbacks.rich_progress_bar=null",
        "extras.print_config=false",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_ids = []
    for job, lr, other in (
        ("0", b'"lr":0.001', b'"lr":0.002'),
        ("1", b'"lr":0.002', b'"lr":0.001'),
    ):
        (offline,) = (tmp_path / job / "wandb").glob("offline-run-*")
        run_ids.append(offline.name.rsplit("-", 1)[1])
        # an offline run keeps its config as JSON values inside protobuf records, and
        # wandb ships no offline reader: look for the values themselves
        (records,) = offline.glob("run-*.wandb")
        data = records.read_bytes()
        assert lr in data and other not in data  # this job's hyperparameters only
        assert b'\x04tags\x82\x01\x07["dev"]' in data  # the tags, as a logged parameter
    assert run_ids[0] != run_ids[1]


def test_wandb_starts_without_a_warning_about_the_anonymous_setting(
    tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning's WandbLogger always passes wandb.init an ``anonymous`` (None when not
    asked for), and wandb 0.2x answers any value with "WARNING The anonymous setting has
    no effect and will be removed in a future version", a line no user can act on."""
    from src.utils.loggers import wandb_logger

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    logger = wandb_logger(offline=None, save_dir=str(tmp_path), project="test")
    try:
        assert logger.experiment.settings._offline
    finally:
        logger.experiment.finish()
    said = capfd.readouterr()
    assert "anonymous" not in said.err + said.out


def test_mlflow_new_experiment_is_an_info_line_not_a_warning(tmp_path: Path) -> None:
    """The first run of a task printed "[lightning.pytorch.loggers.mlflow][WARNING] -
    Experiment with name train not found. Creating it.": nothing a user should fix."""
    import logging

    from src.utils.loggers import mlflow_logger

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    source = logging.getLogger("lightning.pytorch.loggers.mlflow")
    level = source.level
    source.addHandler(handler)
    source.setLevel(logging.INFO)
    try:
        logger = mlflow_logger(
            experiment_name="fresh", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"
        )
        assert logger.experiment.get_experiment(logger.experiment_id).name == "fresh"
    finally:
        source.removeHandler(handler)
        source.setLevel(level)
    said = [(r.levelname, r.getMessage()) for r in records]
    assert said == [("INFO", "Creating the MLflow experiment 'fresh'")], said


def test_logger_packages_load_only_when_chosen(tmp_path: Path) -> None:
    # its run goes to tmp_path: it left a debug run in the project's logs/ every time
    argv = ["src/train.py", "debug=fdr", "extras.print_config=false", f"paths.log_dir={tmp_path}"]
    code = (
        f"import runpy, sys; sys.argv = {argv!r};"
        "runpy.run_path('src/train.py', run_name='__main__');"
        "print('HEAVY', sorted(m for m in ('mlflow', 'wandb', 'peft') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert "HEAVY []" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert list((tmp_path / "debug" / "runs").iterdir())  # the run was made, there
