"""A diverging run stops at the first non-finite loss with status 'diverged', keeps the
last finite checkpoint, and writes only valid JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from src.callbacks.divergence import DivergedError
from src.train import train
from tests.conftest import compose_config

# Adam with lr=1e30: the weights explode within the first epoch's steps
EXPLODE = ["logger=none", "test=false", "+trainer.limit_train_batches=10", "seed=1"]


def _strict(path: Path) -> dict:
    return json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(token))


def test_divergence_stops_the_run(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml", [*EXPLODE, "trainer.max_epochs=3", "model.optimizer.lr=1e30"], tmp_path
    )
    with pytest.raises(DivergedError) as caught:
        train(cfg)
    status = _strict(tmp_path / "run_status.json")
    assert status["status"] == "diverged"
    assert (status["epoch"], status["step"]) == (caught.value.epoch, caught.value.step)
    assert status["step"] < 30  # stopped at once, not after three epochs of NaN
    for checkpoint in (tmp_path / "checkpoints").glob("*.ckpt"):  # only finite weights kept
        weights = torch.load(checkpoint, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_keep_going_finishes_with_valid_json(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml",
        [
            *EXPLODE,
            "trainer.max_epochs=1",
            "model.optimizer.lr=1e30",
            "callbacks.stop_on_divergence.keep_going=true",
            "callbacks.early_stopping=null",  # it stops a NaN val metric by itself
        ],
        tmp_path,
    )
    train(cfg)
    status = _strict(tmp_path / "run_status.json")  # no NaN / Infinity tokens
    assert status["status"] == "finished"
    assert status["metrics"]["train/loss"] is None  # NaN written as null
