"""The optimizer configs' fused default: taken where it works, dropped where Lightning
would refuse it (mixed precision with gradient clipping), and it learns like the unfused
one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import train_run

QUICK = ["trainer.max_epochs=2", "logger=[]", "callbacks=none", "data.batch_size=64"]


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_optimizer_configs_are_fused_and_learn(tmp_path: Path, optimizer: str) -> None:
    metrics, objects = train_run(tmp_path, *QUICK, f"model/optimizer={optimizer}")
    (opt,) = objects["trainer"].optimizers
    assert opt.defaults["fused"] is True
    assert metrics["test/acc"] > 0.8  # digits, two epochs of the default MLP


def test_fused_and_unfused_adam_train_alike(tmp_path: Path) -> None:
    fused, _ = train_run(tmp_path / "fused", *QUICK, "seed=3")
    unfused, _ = train_run(tmp_path / "unfused", *QUICK, "seed=3", "model.optimizer.fused=false")
    # one rounding order apart: the same run within a sample or two of the test set
    assert abs(fused["test/acc"] - unfused["test/acc"]) < 0.01
    assert abs(fused["test/loss"] - unfused["test/loss"]) < 0.01


def test_mixed_precision_with_clipping_runs_unfused(tmp_path: Path) -> None:
    # a fused step unscales its gradients itself, so Lightning's AMP plugin will not clip
    # them first; on CPU 16-mixed becomes bf16-mixed, which the plugin refuses alike
    metrics, objects = train_run(
        tmp_path,
        *QUICK,
        "trainer.precision=16-mixed",
        "trainer.gradient_clip_val=1.0",
    )
    (opt,) = objects["trainer"].optimizers
    assert opt.defaults["fused"] is False
    assert metrics["test/acc"] > 0.8
