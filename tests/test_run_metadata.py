"""Each run directory records the code, dependencies, software and devices it used."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import torch

from src.train import train
from src.utils.run_metadata import DIFF_FILE, METADATA_FILE, write_run_metadata
from tests.conftest import ROOT, compose_config


def test_training_run_records_what_reproduces_it(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["debug=fdr"], tmp_path)
    train(cfg)
    metadata = json.loads((tmp_path / METADATA_FILE).read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert metadata["git"]["commit"] == head.stdout.strip()
    lock_hash = hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()
    assert metadata["uv_lock_sha256"] == lock_hash
    assert metadata["versions"]["torch"] == torch.__version__
    assert metadata["devices"]["accelerator"] == "cpu" and metadata["devices"]["num_devices"] == 1


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_uncommitted_changes_are_saved_as_a_patch(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "model.py").write_text("lr = 0.1\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    out = tmp_path / "run"

    write_run_metadata(out, repo)
    clean = json.loads((out / METADATA_FILE).read_text())["git"]
    assert clean["dirty"] is False and not (out / DIFF_FILE).exists()

    (repo / "model.py").write_text("lr = 0.3\n")
    (repo / "new.py").write_text("x = 1\n")
    write_run_metadata(out, repo)
    dirty = json.loads((out / METADATA_FILE).read_text())["git"]
    assert dirty["dirty"] is True and dirty["untracked_files"] == ["new.py"]
    patch = (out / DIFF_FILE).read_text()
    assert "-lr = 0.1" in patch and "+lr = 0.3" in patch


def test_outside_a_repository_git_is_recorded_as_unknown(tmp_path: Path) -> None:
    write_run_metadata(tmp_path / "run", tmp_path)
    metadata = json.loads((tmp_path / "run" / METADATA_FILE).read_text())
    assert metadata["git"]["commit"] is None and "not a git repository" in metadata["git"]["note"]
