"""Issue 15.6: inputs whose own errors were tracebacks or misleading are one message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from src.train import train
from src.utils.errors import UserInputError
from src.vimh.format import read_records
from tests.conftest import compose_config


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc' is not a number of epochs"),
        ("trainer.max_epochs=-5", "trainer.max_epochs=-5 is not a number of epochs"),
        ("model.optimizer.lr=-1", "model.optimizer.lr=-1 must be a number >= 0"),
        ("model.optimizer.lr=abc", "model.optimizer.lr='abc' must be a number >= 0"),
    ],
)
def test_bad_run_settings_stop_before_any_work(tmp_path: Path, override: str, expected: str):
    cfg = compose_config("train.yaml", [override, "logger=none"], tmp_path)
    with pytest.raises(UserInputError, match=expected.replace("(", r"\(")):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "splits.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without GPU")
def test_gpu_trainer_without_gpu_says_trainer_cpu(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["trainer=gpu", "logger=none"], tmp_path)
    with pytest.raises(UserInputError, match="no usable CUDA GPU.*trainer=cpu"):
        train(cfg)


def test_random_bytes_vimh_file(tmp_path: Path) -> None:
    path = tmp_path / "train"
    path.write_bytes(os.urandom(50_000))
    with pytest.raises(UserInputError, match="not a VIMH record file, or it is corrupt"):
        read_records(path, 2)
