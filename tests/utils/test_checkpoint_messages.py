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
