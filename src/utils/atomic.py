"""Atomic file writes: every file the template owns is either the old one or the new one.

A file is written to a temporary name in its own directory (so the final step
is a rename on one filesystem, never a copy across filesystems), flushed and
fsynced, then renamed over the target; the directory is fsynced so the rename
itself survives a power cut. A failure at any point (a full disk, a signal, a
crash) removes the temporary file and leaves the previous version in place.

A full disk becomes one ``DiskFullError`` naming the path, the bytes needed and
the bytes free. Checkpoints go through ``src.utils.checkpoint_io.AtomicCheckpointIO``,
which calls ``write_bytes`` here.

Imports nothing heavy (run status is written by processes that never import torch).
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from src.utils.errors import UserInputError


class DiskFullError(UserInputError):
    """No space left to write a file the run needs; the previous version is kept."""


def _free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not open directories: the rename is done anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file beside it, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            free = _free_bytes(path.parent)
            raise DiskFullError(
                f"Disk full: writing {path} needs {len(data):,} bytes, "
                f"{'an unknown number of' if free is None else f'{free:,}'} bytes are free "
                f"on its filesystem. The previous version of the file (if any) is kept. "
                "Free some space or point paths.log_dir at a larger disk, then run again "
                "(resume with ckpt_path=<run>/checkpoints/last.ckpt)."
            ) from None
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def link_file(source: str | Path, path: str | Path) -> Path:
    """Make ``path`` a hard link to ``source`` atomically (a link made beside it, renamed
    over it): the old ``path`` or the new one, never neither. ``source`` must be a file the
    caller wrote completely (its bytes synced already). Raises ``OSError`` where the
    filesystem has no hard links; the old ``path`` is then untouched."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    os.link(source, temporary)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def finite_json(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    return value


def write_json(path: str | Path, value: Any, indent: int | None = 2) -> Path:
    """Write ``value`` as strict JSON (non-finite floats become null) atomically."""
    text = json.dumps(finite_json(value), indent=indent, allow_nan=False)
    return write_text(path, text + "\n")
