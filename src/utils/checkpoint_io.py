"""Checkpoints written atomically, in the checkpoint's own directory.

Lightning's ``TorchCheckpointIO`` saves through an fsspec transaction, which
for a local path writes the file in the system temporary folder and then
copies it across filesystems: a full disk during the copy leaves a truncated
``last.ckpt`` in place of the previous good one. This plug-in serialises the
checkpoint in memory and hands the bytes to ``src.utils.atomic.write_bytes``
(temporary file beside the target, fsync, rename), so a failed save keeps the
previous checkpoint and a full disk is one message naming the path and size.
Remote paths (``s3://`` ...) keep Lightning's own saving.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH

from src.utils.atomic import write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (see the module docstring)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes(Path(path), buffer.getvalue())


def with_atomic_checkpoints(plugins: Any) -> list[Any]:
    """The trainer's plug-ins plus ``AtomicCheckpointIO``, unless one CheckpointIO is given."""
    from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

    plugins = list(plugins or []) if not isinstance(plugins, str) else [plugins]
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins
