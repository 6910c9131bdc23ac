"""Atomic writes: a full disk keeps the previous files and is one message; a damaged
status file never breaks a listing. Full disks are real: a small tmpfs mounted here."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from src.train import train
from src.utils.atomic import DiskFullError, link_file, write_bytes, write_json
from src.utils.runs import list_runs
from tests.conftest import compose_config, save_run_config


def _mount_small_disk(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}"
        print(reason)
        pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 700 KB filesystem: one digits MLP checkpoint (452 KB) fits, two do not."""
    disk = tmp_path / "small"
    _mount_small_disk(disk, "700k")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_disk_keeps_the_previous_file(small_disk: Path) -> None:
    target = small_disk / "last.ckpt"
    write_bytes(target, b"good" * 25_000)
    with pytest.raises(DiskFullError) as caught:
        write_bytes(target, b"x" * 800_000)
    message = str(caught.value)
    assert str(target) in message and "800,000 bytes" in message
    assert target.read_bytes() == b"good" * 25_000  # the previous version survived
    assert [p.name for p in small_disk.iterdir()] == ["last.ckpt"]  # no temporary left


def test_link_replaces_the_target_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    source = write_bytes(tmp_path / "epoch_001.ckpt", b"best")
    target = write_bytes(tmp_path / "last.ckpt", b"old")
    link_file(source, target)
    assert os.path.samefile(source, target) and target.read_bytes() == b"best"
    write_bytes(target, b"later")  # a later save replaces the link, not the file it shares
    assert (source.read_bytes(), target.read_bytes()) == (b"best", b"later")

    def interrupted(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        link_file(source, target)
    assert target.read_bytes() == b"later"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_001.ckpt", "last.ckpt"]


def test_training_on_a_full_disk(small_disk: Path) -> None:
    """The checkpoint that does not fit is one DiskFullError; every file left on the disk
    is whole (checkpoints load, the status is JSON) and the run lists."""
    cfg = compose_config("train.yaml", ["trainer.max_epochs=2", "logger=none"], small_disk)
    save_run_config(cfg, small_disk)
    with pytest.raises(DiskFullError) as caught:
        train(cfg)
    assert "checkpoints" in str(caught.value) and "bytes" in str(caught.value)
    for checkpoint in (small_disk / "checkpoints").glob("*.ckpt"):
        torch.load(checkpoint, weights_only=True)  # complete, not truncated
    assert not list(small_disk.rglob(".*.tmp-*"))
    status = json.loads((small_disk / "run_status.json").read_text())
    assert status["status"] == "failed" and "Disk full" in status["error"]
    assert list_runs(small_disk)["status"].tolist() == ["failed"]


def test_damaged_status_file_lists_as_damaged(tmp_path: Path) -> None:
    for name, status in (("good", '{"status": "finished"}'), ("bad", '{"status": "fin')):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "config.yaml").write_text("task_name: train\n")
        (tmp_path / name / "run_status.json").write_text(status)
    table = list_runs(tmp_path).set_index("run_dir")
    assert table.loc[str(tmp_path / "bad"), "status"] == "damaged"
    assert table.loc[str(tmp_path / "good"), "status"] == "finished"


def test_json_files_are_strict(tmp_path: Path) -> None:
    path = write_json(tmp_path / "s.json", {"loss": float("nan"), "acc": [1.0, float("inf")]})
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    assert json.loads(path.read_text()) == {"loss": None, "acc": [1.0, None]}


def test_config_tree_and_tags_are_written_whole_or_not_at_all(small_disk: Path) -> None:
    """extras' config_tree.log and tags.log: on a disk too full for the new text, the
    previous file stays whole, no temporary is left, and the error is one message."""
    from src.utils.rich_utils import enforce_tags, print_config_tree

    cfg = compose_config("train.yaml", ["tags=[first,second]"], small_disk)
    print_config_tree(cfg, resolve=False, save_to_file=True, to_console=False)
    enforce_tags(cfg, save_to_file=True)
    tree, tags = small_disk / "config_tree.log", small_disk / "tags.log"
    assert "CONFIG" in tree.read_text() and "max_epochs" in tree.read_text()
    assert tags.read_text() == "['first', 'second']\n"
    before = {path: path.read_bytes() for path in (tree, tags)}
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to its last byte
        while True:
            os.write(filler, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(filler)
    cfg.tags = [f"tag{i}" for i in range(2000)]
    with pytest.raises(DiskFullError, match="tags.log"):
        enforce_tags(cfg, save_to_file=True)
    cfg.trainer.max_epochs = 7
    with pytest.raises(DiskFullError, match="config_tree.log"):
        print_config_tree(cfg, resolve=False, save_to_file=True, to_console=False)
    assert {path: path.read_bytes() for path in (tree, tags)} == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["config_tree.log", "filler", "tags.log"]
