"""Issue 15.6: inputs whose own errors were tracebacks or misleading are one message."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from src.train import train
from src.utils.errors import UserInputError
from src.vimh.format import read_records
from tests.conftest import compose_config, run_cli


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


@pytest.mark.parametrize("script", ["train", "eval"])
def test_a_missing_checkpoint_stops_before_the_run_is_built(
    tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped ckpt_path= is said before the data and model are set up (it was said
    after them, ~8 s later with the default data)."""
    import src.eval
    import src.utils.instantiators as instantiators
    from src.eval import evaluate

    def built(cfg):
        raise AssertionError("the data and model were built before the path was checked")

    monkeypatch.setattr(instantiators, "instantiate_run", built)  # train.py imports it late
    monkeypatch.setattr(src.eval, "instantiate_run", built)
    missing = tmp_path / "nope.ckpt"
    cfg = compose_config(f"{script}.yaml", [f"ckpt_path={missing}", "logger=none"], tmp_path)
    with pytest.raises(UserInputError, match=f"Checkpoint {missing} does not exist"):
        (train if script == "train" else evaluate)(cfg)


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


def test_table_of_five_rows_is_one_message_before_training(tmp_path: Path) -> None:
    # torchmetrics' R² raised "Needs at least two samples" from the first validation
    table = tmp_path / "five.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{i * i},{2 * i + 1}\n" for i in range(5)))
    before = table.read_bytes()
    run_dir = tmp_path / "run"
    done = run_cli(
        "train.py",
        "experiment=diabetes_mlp",
        "data=tabular",
        f"data.path={table}",
        "data.target_columns=[y]",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run_dir}",
        "extras.print_config=false",
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    for phrase in ("its 5 rows make splits of [3, 1, 1]", "at least 2", "at least 6 rows"):
        assert phrase in done.stderr, (phrase, done.stderr[-3000:])
    assert table.read_bytes() == before
    # nothing of a run beyond Hydra's files, the log and the status saying why: no splits,
    # no checkpoint
    left = {p.name for p in run_dir.rglob("*") if p.is_file()} - {"tags.log", "train.log"}
    assert left == {"config.yaml", "hydra.yaml", "overrides.yaml", "run_status.json"}, left
    status = json.loads((run_dir / "run_status.json").read_text())
    assert status["status"] == "failed" and "5 rows" in status["error"], status
