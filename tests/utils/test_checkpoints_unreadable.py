"""A checkpoint that torch cannot read is one short sentence of the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.utils.checkpoints import load_weights_only
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
