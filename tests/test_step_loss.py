"""callbacks=[default,step_loss]: train/loss per step, off by default."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from src.train import train
from tests.conftest import compose_config


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "version_0" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("switch", [False, True])
def test_step_loss_switch(tmp_path: Path, switch: bool) -> None:
    callbacks = "callbacks=[default,step_loss]" if switch else "callbacks=default"
    cfg = compose_config(
        "train.yaml",
        [callbacks, "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "logger=csv"],
        tmp_path,
    )
    _, objects = train(cfg)
    batches = objects["trainer"].num_training_batches  # 33: BatchNorm drops the last, short one
    rows = metric_rows(tmp_path)
    steps = [r for r in rows if r.get("train/loss_step")]
    if not switch:
        assert not steps  # off by default: only the epoch values
        return
    assert len(steps) == 2 * batches == objects["trainer"].global_step  # every step
    # the epoch's train/loss is the mean of its steps' losses (equal batches of 32)
    epoch_rows = [r for r in rows if r.get("train/loss")]
    first = [float(r["train/loss_step"]) for r in steps[:batches]]
    assert float(epoch_rows[0]["train/loss"]) == pytest.approx(sum(first) / batches, rel=1e-4)
    assert first[-1] < first[0]  # it learns within the first epoch
