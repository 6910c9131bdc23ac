"""Habits of lightning-hydra-template users: every debug= config on every data module
(a real DataLoader underneath), LHT's model names and keywords, fractional limits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.profilers import SimpleProfiler

from src.models.components.simple_dense_net import SimpleDenseNet
from src.train import train
from src.utils.errors import UserInputError
from src.utils.hook_dispatch import NoProfiler
from tests.conftest import CONFIGS, compose_config, run_cli
from tests.test_configs import data_dirs  # noqa: F401  (a fixture)

DEBUGS = ("default", "fdr", "limit", "overfit", "profiler")

# each data module with a model made for it, at tiny sizes
PAIRS = {
    "digits": [],
    "mnist": ["data.train_val_test_split=[1000,200,300]"],
    "diabetes": ["model=regression_mlp"],
    "signals": ["model=cnn1d", "data.num_samples=300"],
    "tabular": ["model=regression_mlp"],
    "vimh": ["model=vimh_cnn_16k"],
}


def debug_run(data: str, debug: str, dirs: dict[str, Path], tmp_path: Path, *more: str):
    places = {
        "mnist": [f"paths.data_dir={dirs['mnist']}"],
        "tabular": [f"data.path={dirs['table']}", "data.target_columns=[y]"],
        "vimh": [f"paths.data_dir={dirs['vimh']}", "data.generate=true"],
    }.get(data, [])
    cfg = compose_config(
        "train.yaml", [f"data={data}", f"debug={debug}", *PAIRS[data], *places, *more], tmp_path
    )
    return train(cfg)


@pytest.mark.parametrize("data", PAIRS)
def test_fast_dev_run_on_every_data_module(data, data_dirs, tmp_path) -> None:  # noqa: F811
    metrics, objects = debug_run(data, "fdr", data_dirs, tmp_path)
    assert isinstance(objects["datamodule"].train_dataloader(), torch.utils.data.DataLoader)
    assert any(key.startswith("test/") for key in metrics)


@pytest.mark.parametrize("debug", DEBUGS)
def test_every_debug_config_on_digits(debug, data_dirs, tmp_path) -> None:  # noqa: F811
    metrics, objects = debug_run("digits", debug, data_dirs, tmp_path)
    trainer = objects["trainer"]
    if debug == "overfit":  # 3 batches learnt by heart, the same 3 every epoch
        assert trainer.num_training_batches == 3
        assert float(metrics["train/acc"]) > 0.95
    if debug == "limit":  # 10% of 34 batches: 3
        assert trainer.num_training_batches == 3
    # LHT's debug=profiler gets Lightning's SimpleProfiler; without one, our cheaper no-op
    profiler = SimpleProfiler if debug == "profiler" else NoProfiler
    assert type(trainer.profiler) is profiler
    # the callbacks' empty per-batch hooks are passed by, also in the checkpoint callback
    # Lightning adds (the tests' configs have no callbacks): it saves at batch ends only
    checkpoint = trainer.checkpoint_callback
    assert callable(checkpoint.on_train_batch_end) and checkpoint.on_before_backward is None
    assert "test/acc" in metrics


def test_a_logger_given_with_a_debug_config_is_kept(tmp_path: Path) -> None:
    """``debug=overfit logger=csv`` (to read train/acc epoch by epoch): the debug configs'
    ``logger: null`` dropped the logger asked for, without a word."""
    cfg = compose_config("train.yaml", ["debug=limit"], tmp_path / "alone")
    assert not cfg.logger  # a debug run logs nowhere unless asked
    cfg = compose_config("train.yaml", ["debug=limit", "logger=csv"], tmp_path)
    metrics, objects = train(cfg)
    assert [type(lg).__name__ for lg in objects["logger"]] == ["CSVLogger"]
    logged = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "train/acc" in logged[0].split(",") and len(logged) > 3  # 3 epochs of rows
    assert objects["trainer"].max_epochs == 3  # still debug=limit


@pytest.mark.slow
@pytest.mark.parametrize("debug", [d for d in DEBUGS if d != "fdr"])
@pytest.mark.parametrize("data", [d for d in PAIRS if d != "digits"])
def test_every_debug_config_on_every_data_module(data, debug, data_dirs, tmp_path) -> None:  # noqa: F811
    metrics, _ = debug_run(data, debug, data_dirs, tmp_path, "trainer.max_epochs=2")
    assert any(key.startswith("test/") for key in metrics)


def test_fraction_of_less_than_one_batch_runs_one(data_dirs, tmp_path, caplog) -> None:  # noqa: F811
    _, objects = debug_run(
        "digits", "default", data_dirs, tmp_path, "+trainer.limit_train_batches=0.01"
    )
    assert objects["trainer"].num_training_batches == 1
    assert "running 1 batch instead" in caplog.text
    # the override the warning advises composes (trainer.limit_train_batches=1 without a
    # + was refused: the key is not in the trainer config) and says the same without a warning
    (advised,) = re.findall(r"\(set (\S+) to say so\)", caplog.text)
    caplog.clear()
    _, objects = debug_run("digits", "default", data_dirs, tmp_path / "advised", advised)
    assert objects["trainer"].num_training_batches == 1
    assert "running 1 batch instead" not in caplog.text


def test_lht_model_name_and_keywords(data_dirs, tmp_path) -> None:  # noqa: F811
    net = SimpleDenseNet(input_size=64, lin1_size=16, lin2_size=16, lin3_size=8, output_size=10)
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(UserInputError, match="exactly one"):
        SimpleDenseNet(input_shape=[64], input_size=64, num_classes=10)
    # model=mnist (LHT's name: its MLP widths) learns the digits in a few epochs
    metrics, objects = debug_run(
        "digits", "default", data_dirs, tmp_path, "model=mnist", "trainer.max_epochs=5"
    )
    assert objects["model"].net.model[1].out_features == 64
    assert float(metrics["test/acc"]) > 0.85


# experiments on the user's own folders (data.root): the only ones a fresh clone cannot run
FOLDER_EXPERIMENTS = sorted(
    p.stem for p in Path(CONFIGS, "experiment").glob("*.yaml") if "_folder" in p.stem
)
TINY = [
    f"++trainer.{k}=2" for k in ("limit_train_batches", "limit_val_batches", "limit_test_batches")
]


@pytest.mark.slow
def test_every_experiment_from_a_fresh_clone(tmp_path: Path) -> None:
    """LHT's smoke test, `-m 'experiment=glob(*)'`, with empty data and log directories:
    the VIMH data sets are generated and the LoRA bases trained on first use."""
    from src.data.components.idx import digits_as_mnist, write_mnist_like

    images, labels = digits_as_mnist(70_000, seed=1)  # MNIST can't be downloaded here
    raw = tmp_path / "data" / "MNIST" / "raw"
    write_mnist_like(raw, (images[:60_000], labels[:60_000]), (images[60_000:], labels[60_000:]))
    sweep = tmp_path / "sweep"
    done = run_cli(
        "train.py",
        "-m",
        f"experiment=glob(*,exclude=[{','.join(FOLDER_EXPERIMENTS)}])",
        "trainer.max_epochs=1",
        *TINY,
        "extras.print_config=false",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.sweep.dir={sweep}",
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expected = sorted(
        p.stem
        for p in Path(CONFIGS, "experiment").glob("*.yaml")
        if p.stem not in FOLDER_EXPERIMENTS
    )
    jobs = [job for job in sweep.iterdir() if job.is_dir()]
    ran = sorted(
        yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())[0].split("=")[1]
        for job in jobs
    )
    assert ran == expected
    for job in jobs:
        status = json.loads((job / "run_status.json").read_text())
        assert status["status"] == "finished", job
        assert any(k.startswith("test/") for k in status["metrics"]), job
    # one base per LoRA base experiment (lora_digits_inverted shares lora_digits'), each
    # a full run of its experiment that learned
    bases = sorted((tmp_path / "logs" / "lora_bases").iterdir())
    assert [b.name.rsplit("_", 1)[0] for b in bases] == ["lora_digits_base", "vimh_cnn"]
    digits_base = json.loads((bases[0] / "run_status.json").read_text())["metrics"]
    assert digits_base["test/acc"] > 0.95
