"""Runs you can tell apart: MLflow run names and tags (read back with MLflow's own client on
the sqlite store), multirun groups, and TensorBoard's HPARAMS metric (read from the event
files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict, read_write

from src.train import train
from src.utils.loggers import (
    default_run_name,
    report_optimized_metric,
    run_tags,
    shared_override_keys,
)
from tests.conftest import compose_config, run_cli


def mlflow_runs(log_dir: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{log_dir}/mlflow/mlflow.db")
    experiment = client.get_experiment_by_name("train")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])


def tensorboard_hparams(run_dir: Path) -> tuple[set[str], dict[str, float]]:
    """The metric names of the HPARAMS experiment, and the scalars' last values."""
    names, last, _ = tensorboard_experiment(run_dir)
    return names, last


def tensorboard_experiment(run_dir: Path) -> tuple[set[str], dict[str, float], set[str]]:
    """The metric names of the HPARAMS experiment, the scalars' last values, and the
    hyperparameters marked as differing (TensorBoard's table shows those first)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    names: set[str] = set()
    differs: set[str] = set()
    last: dict[str, float] = {}
    for events in sorted(run_dir.glob("tensorboard/**/events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent), size_guidance={"tensors": 0, "scalars": 0})
        acc.Reload()
        for tag, content in acc.PluginTagToContent("hparams").items():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if tag == "_hparams_/experiment":
                names |= {info.name.tag for info in data.experiment.metric_infos}
                differs |= {i.name for i in data.experiment.hparam_infos if i.differs}
        for tag in acc.Tags()["scalars"]:
            last[tag] = acc.Scalars(tag)[-1].value
    return names, last, differs


def as_multirun_job(cfg, tmp_path: Path) -> None:
    """Make this composed run job 1 of a multirun, as Hydra's launcher would set it."""
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = "MULTIRUN"
        cfg.hydra.job.num = 1
        cfg.hydra.overrides.task = ["model.optimizer.lr=0.002", f"paths.log_dir={tmp_path}"]
        cfg.hydra.sweep.dir = str(tmp_path / "2026-01-01_00-00-00_000001")
    HydraConfig.instance().set_config(cfg)


def test_a_multirun_job_is_named_and_tagged_after_its_job(tmp_path: Path) -> None:
    """The name and tags the MLflow logger gets (mlflow itself is not imported here)."""
    cfg = compose_config("train.yaml", ["logger=mlflow", "tags=[probe,second]"], tmp_path)
    as_multirun_job(cfg, tmp_path)
    assert cfg.logger.mlflow.run_name is None and cfg.logger.mlflow.tags == ["probe", "second"]
    assert default_run_name(cfg.task_name) == "train#1 model.optimizer.lr=0.002"
    assert run_tags(cfg.logger.mlflow.tags, cfg.task_name) == {
        "task": "train",
        "probe": "true",
        "second": "true",
        "multirun": "2026-01-01_00-00-00_000001",
        "job": "1",
        "overrides": "model.optimizer.lr=0.002",
    }


def test_overrides_every_job_shares_stay_out_of_the_name(tmp_path: Path) -> None:
    """With Hydra's multirun.yaml (the basic sweeper's), the name keeps what is swept."""
    cfg = compose_config("train.yaml", ["logger=mlflow"], tmp_path)
    as_multirun_job(cfg, tmp_path)
    sweep = Path(cfg.hydra.sweep.dir)
    sweep.mkdir()
    task = ["model.optimizer.lr=0.002,0.004", "++trainer.max_epochs=1", "seed=range(2)"]
    OmegaConf.save({"hydra": {"overrides": {"task": task}}}, sweep / "multirun.yaml")
    assert shared_override_keys(str(sweep)) == {"trainer.max_epochs"}
    with read_write(cfg.hydra):
        cfg.hydra.overrides.task = ["model.optimizer.lr=0.002", "++trainer.max_epochs=1", "seed=0"]
    HydraConfig.instance().set_config(cfg)
    assert default_run_name("train") == "train#1 model.optimizer.lr=0.002 seed=0"
    tags = run_tags(None, "train")
    assert tags["overrides"] == "model.optimizer.lr=0.002 ++trainer.max_epochs=1 seed=0"
    assert shared_override_keys(str(tmp_path / "no_such_sweep")) == set()  # Optuna: none known


def assert_hparams_hold_the_optimized_metric(log_dir: Path, metrics: dict) -> None:
    names, last = tensorboard_hparams(log_dir)
    assert names == {"val/acc_best"}  # the optimized metric, no hp_metric placeholder
    assert "hp_metric" not in last
    assert last["val/acc_best"] == pytest.approx(float(metrics["val/acc_best"]))
    assert last["val/acc_best"] > 0.5  # one epoch of the MLP on digits learns


def test_tensorboard_hparams_show_the_optimized_metric(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["logger=tensorboard", "trainer.max_epochs=1"], tmp_path)
    metrics, objects = train(cfg)
    report_optimized_metric(objects["trainer"], metrics, cfg.optimized_metric)
    assert_hparams_hold_the_optimized_metric(tmp_path, metrics)
    # the run's overrides lead the HPARAMS table (logger= is where it logs, not a value)
    assert tensorboard_experiment(tmp_path)[2] == {"trainer/max_epochs"}


@pytest.mark.slow
def test_mlflow_run_named_after_job_and_overrides_with_real_tags(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml",
        ["logger=[mlflow,tensorboard]", "trainer.max_epochs=1", "tags=[probe,second]"],
        tmp_path,
    )
    as_multirun_job(cfg, tmp_path)
    metrics, objects = train(cfg)
    report_optimized_metric(objects["trainer"], metrics, cfg.optimized_metric)

    (run,) = mlflow_runs(tmp_path)
    assert run.info.run_name == "train#1 model.optimizer.lr=0.002"
    tags = run.data.tags
    assert tags["probe"] == "true" and tags["second"] == "true"
    assert tags["multirun"] == "2026-01-01_00-00-00_000001" and tags["job"] == "1"
    assert tags["overrides"] == "model.optimizer.lr=0.002"

    assert_hparams_hold_the_optimized_metric(tmp_path, metrics)


@pytest.mark.slow
def test_multirun_jobs_have_distinct_names_and_one_group(tmp_path: Path) -> None:
    done = run_cli(
        "train.py",
        "-m",
        "logger=[mlflow,tensorboard]",
        "model.optimizer.lr=0.001,0.003",
        "trainer.max_epochs=1",
        "extras.print_config=false",
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = mlflow_runs(tmp_path)
    # the overrides every job shares are in the "overrides" tag, not in the names
    assert [r.info.run_name for r in runs] == [
        "train#0 model.optimizer.lr=0.001",
        "train#1 model.optimizer.lr=0.003",
    ]
    assert runs[0].data.tags["overrides"] == "model.optimizer.lr=0.001 trainer.max_epochs=1"
    assert {r.data.tags["multirun"] for r in runs} == {"sweep"}
    assert all(r.data.tags["dev"] == "true" for r in runs)
    for job in ("0", "1"):
        names, last, differs = tensorboard_experiment(tmp_path / "sweep" / job)
        assert names == {"val/acc_best"} and last["val/acc_best"] > 0.5
        assert differs == {"model/optimizer/lr"}  # the swept value, not the shared epochs


def test_tensorboard_figures_share_the_step_of_their_epochs_scalars(tmp_path: Path) -> None:
    """The confusion matrix of an epoch is at the step of that epoch's val/acc (Lightning
    logs epoch metrics at the batches stepped, one behind global_step during validation):
    TensorBoard's step slider shows both for the same epoch."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_config(
        "train.yaml",
        ["logger=tensorboard", "trainer.max_epochs=2", "callbacks=[default,confusion_matrix]",
         "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2",
         "+trainer.limit_test_batches=2"],
        tmp_path,
    )  # fmt: skip
    train(cfg)
    steps: dict[str, list[int]] = {}
    for events in sorted(tmp_path.glob("tensorboard/**/events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            steps.setdefault(tag, []).extend(e.step for e in acc.Scalars(tag))
        for tag in acc.Tags()["images"]:
            steps.setdefault(tag, []).extend(e.step for e in acc.Images(tag))
    assert steps["val/acc"] == [2, 5]
    assert steps["confusion_matrix_val"] == steps["val/acc"]
    assert steps["confusion_matrix_test"] == steps["test/acc"]
