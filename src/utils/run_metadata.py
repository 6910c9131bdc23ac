"""What reproduces a run, written into its directory.

Hydra already saves the composed config and the overrides (``.hydra/``).
This adds what the config cannot say: the code (git commit, plus a diff of
uncommitted changes), the dependency set (the hash of ``uv.lock``), the
software and hardware the run used, and which samples went into which split
(``splits.json``). Every file is written atomically (``src.utils.atomic``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_only

from src.utils.atomic import write_json, write_text

METADATA_FILE = "run_metadata.json"
DIFF_FILE = "git_diff.patch"
SPLITS_FILE = "splits.json"


def _git(root: Path, *commands: tuple[str, ...]) -> list[str | None]:
    """The output of each ``git <command>`` in ``root`` (None where it failed). The
    commands run side by side: one after another they took ~22 ms of every run's
    start-up on the 2-core build machines, together ~15 ms."""
    try:
        running = [
            subprocess.Popen(
                ["git", *args],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for args in commands
        ]
    except OSError:  # no git
        return [None] * len(commands)
    outputs: list[str | None] = []
    for process in running:
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            out = None
        outputs.append(out if process.returncode == 0 else None)
    return outputs


def git_state(root: Path) -> dict[str, Any]:
    """Commit, branch and uncommitted changes of the repository at ``root``."""
    commit, branch, diff, untracked = _git(
        root,
        ("rev-parse", "HEAD"),
        ("rev-parse", "--abbrev-ref", "HEAD"),
        ("diff", "HEAD", "--binary"),
        ("ls-files", "--others", "--exclude-standard"),
    )
    if commit is None:
        return {"commit": None, "note": f"{root} is not a git repository (or git is missing)"}
    diff = diff or ""
    untracked_files = (untracked or "").split()
    return {
        "commit": commit.strip(),
        "branch": (branch or "").strip(),
        "dirty": bool(diff or untracked_files),
        "diff": diff,
        "untracked_files": untracked_files,
    }


def devices_used(trainer: Any) -> dict[str, Any]:
    accelerator = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
    info: dict[str, Any] = {
        "accelerator": accelerator,
        "num_devices": trainer.num_devices,
        "num_nodes": trainer.num_nodes,
        "strategy": type(trainer.strategy).__name__,
        "precision": str(trainer.precision),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [
            torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())
        ]
    return info


def collect(root: Path, trainer: Any | None = None) -> dict[str, Any]:
    import lightning

    lock = root / "uv.lock"
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "host": socket.gethostname(),
        "git": git_state(root),
        "uv_lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()
            if torch.backends.cudnn.is_available()
            else None,
            "lightning": lightning.__version__,
            "platform": platform.platform(),
        },
        "devices": devices_used(trainer) if trainer is not None else None,
    }


@rank_zero_only
def write_run_metadata(
    output_dir: str | Path, root: str | Path, trainer: Any | None = None
) -> Path:
    """Write ``run_metadata.json`` (and ``git_diff.patch`` when the tree is dirty)."""
    metadata = collect(Path(root), trainer)
    diff = metadata["git"].pop("diff", "")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if diff:
        write_text(output_dir / DIFF_FILE, diff)
        metadata["git"]["diff_file"] = DIFF_FILE
    return write_json(output_dir / METADATA_FILE, metadata)


@rank_zero_only
def write_splits(output_dir: str | Path, datamodule: Any) -> Path | None:
    """Write the data module's ``split_record()`` (settings, and each split's sample
    indices into the data set) to ``splits.json``; nothing for a data module without one."""
    if not hasattr(datamodule, "split_record"):
        return None
    record = datamodule.split_record()
    path = Path(output_dir) / SPLITS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # one key per line, each index list on one line: readable, and small
    lines = ",\n".join(f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in record.items())
    return write_text(path, "{\n" + lines + "\n}\n")
