"""One message for a checkpoint that cannot be used, saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from src.utils.checkpoints import check_checkpoint_fits, load_weights_only
from src.utils.errors import UserInputError


def test_truncated_checkpoint_names_the_reason_without_torchs_advice(tmp_path: Path) -> None:
    """torch's zip reader adds "This is an internal miniz error. If you are seeing this
    error, ..." and a closing period, which read as "saving.. It is corrupt" after ours."""
    path = tmp_path / "epoch_000.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(4096)}}, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserInputError) as caught:
        load_weights_only(path, "Checkpoint")
    message = str(caught.value)
    assert message == (
        f"Checkpoint {path} cannot be read: RuntimeError: PytorchStreamReader failed reading "
        "zip archive: failed finding central directory. It is corrupt, truncated, or not a "
        "file of this template."
    )


def test_a_run_dirs_foreign_checkpoint_does_not_advise_run_dir(tmp_path: Path) -> None:
    """eval.py run_dir=<run> has rebuilt the run's own model: a checkpoint there of another
    architecture came from another run, and "eval.py run_dir=<run> does this for you"
    (the advice for ckpt_path= alone) sends the user back to the command that failed."""
    path = tmp_path / "checkpoints" / "epoch_002.ckpt"
    path.parent.mkdir()
    torch.save({"state_dict": {"other.weight": torch.zeros(2, 2)}}, path)
    model = nn.Linear(2, 2)
    with pytest.raises(UserInputError) as caught:
        check_checkpoint_fits(path, model, run_dir=tmp_path)
    message = str(caught.value)
    assert f"than the model of run {tmp_path}" in message and "that run did not write it" in message
    assert "does this for you" not in message
    with pytest.raises(UserInputError, match="eval.py run_dir=<run> does this for you"):
        check_checkpoint_fits(path, model)  # ckpt_path= alone: the run's settings help


def test_a_run_dir_that_does_not_exist_is_called_so(tmp_path: Path) -> None:
    """A mistyped run_dir= was reported as having "no saved config (.hydra/config.yaml is
    missing)", as if the directory were there."""
    from src.utils.checkpoints import run_config

    missing = tmp_path / "2026-12-04_02-08-45_40477"
    with pytest.raises(UserInputError, match=rf"^run_dir={missing} does not exist\. "):
        run_config(missing)
    missing.mkdir()  # a directory that is not a run: its config is missing
    with pytest.raises(UserInputError, match="has no saved config"):
        run_config(missing)


def test_run_dir_says_it_does_not_apply_data_or_model_overrides(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """eval.py run_dir=<run> data.batch_size=8 printed batch_size: 8 in its config tree and
    tested with the run's 32, without a word: the data and model come from the run."""
    import logging

    from omegaconf import OmegaConf, open_dict

    from src.utils.training_run import TrainingRun
    from tests.conftest import compose_config

    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    saved = compose_config("train.yaml", [], tmp_path)
    OmegaConf.save({"data": saved.data, "model": saved.model}, run_dir / ".hydra" / "config.yaml")
    overrides = [f"run_dir={run_dir}", "data.batch_size=8", "model/optimizer=sgd", "seed=1"]
    cfg = compose_config("eval.yaml", overrides, tmp_path / "eval")
    with open_dict(cfg):
        cfg.run_dir = str(run_dir)
    with caplog.at_level(logging.WARNING, logger="src.utils.training_run"):
        run = TrainingRun.of(cfg, "evaluate")
    assert run.cfg.data.batch_size == saved.data.batch_size  # the run's, as before
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("data.batch_size=8 model/optimizer=sgd: not applied.")
    assert "seed=1" not in warning and "ckpt_path=<file.ckpt>" in warning
