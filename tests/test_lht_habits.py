"""Habits of lightning-hydra-template users: every debug= config on every data module
(a real DataLoader underneath), LHT's model names and keywords, fractional limits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.models.components.simple_dense_net import SimpleDenseNet
from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config
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
    assert "test/acc" in metrics


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
