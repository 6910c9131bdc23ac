"""A run directory holds one run: a reused one is refused before anything is written,
unless the run resumes that directory's own checkpoint (then its configs are kept)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.utils.run_dir import check_run_dir
from tests.conftest import ROOT, run_cli


def _fingerprint(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _old_run(run_dir: Path) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("trainer:\n  max_epochs: 1\n")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"old")
    (run_dir / "run_status.json").write_text('{"status": "finished"}\n')


def test_reused_run_dir_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    run_dir = tmp_path / "resA"
    _old_run(run_dir)
    before = _fingerprint(run_dir)
    done = run_cli("train.py", f"hydra.run.dir={run_dir}", "trainer.max_epochs=1")
    assert done.returncode == 1
    assert "is not empty" in done.stderr and "ckpt_path=" in done.stderr
    assert "Traceback" not in done.stderr
    assert _fingerprint(run_dir) == before  # nothing written, not even the log


def test_resuming_the_own_checkpoint_keeps_the_config_history(tmp_path: Path) -> None:
    run_dir = tmp_path / "resA"
    _old_run(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert check_run_dir(run_dir, str(last)) is None
    assert check_run_dir(run_dir, str(last)) is None
    kept = sorted(p.relative_to(run_dir) for p in (run_dir / ".hydra" / "history").rglob("*.yaml"))
    assert [str(p) for p in kept] == [
        ".hydra/history/001/config.yaml",
        ".hydra/history/002/config.yaml",
    ]
    # another run's checkpoint does not make the directory free
    other = tmp_path / "other" / "checkpoints" / "last.ckpt"
    assert "is not empty" in check_run_dir(run_dir, str(other))
    assert check_run_dir(tmp_path / "new", None) is None


RANK_KEYS = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "TORCHELASTIC_RUN_ID", "SLURM_STEP_NUM_TASKS")


def _start(run_dir: Path) -> None:
    from omegaconf import OmegaConf

    from src.utils.run_dir import ProtectRunDir

    config = OmegaConf.create({"hydra": {"run": {"dir": str(run_dir)}}, "ckpt_path": None})
    ProtectRunDir().on_run_start(config)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    from src.utils.ddp import JOIN_ENV

    for key in (*RANK_KEYS, JOIN_ENV):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "env",
    [
        {"RANK": "1"},
        {"LOCAL_RANK": "1"},
        {"SLURM_PROCID": "3"},
        {"LOCAL_RANK": "1", "LIGHTNING_HYDRA_LAB_RUN_DIR": "/elsewhere"},  # another run's
        {"RANK": "1", "TORCHELASTIC_RUN_ID": "x"},  # torchrun-like, but the run is old
        {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4"},
    ],
)
def test_a_rank_variable_alone_does_not_open_an_old_run(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    run_dir = tmp_path / "resA"
    _old_run(run_dir)
    an_hour_ago = time.time() - 3600
    for path in run_dir.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    before = _fingerprint(run_dir)
    for key, value in env.items():
        clean_env.setenv(key, value)
    with pytest.raises(SystemExit) as stopped:
        _start(run_dir)
    assert stopped.value.code == 1
    assert _fingerprint(run_dir) == before


def test_extra_ranks_join_the_directory_rank_zero_made(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    from src.utils.ddp import JOIN_ENV

    run_dir = tmp_path / "fresh"
    _start(run_dir)  # rank 0: the directory is free; it tells the ranks it starts
    assert os.environ[JOIN_ENV] == str(run_dir.resolve())
    _old_run(run_dir)  # what rank 0 has written since
    clean_env.setenv("LOCAL_RANK", "1")  # a rank started by Lightning's launcher
    _start(run_dir)
    clean_env.delenv(JOIN_ENV)
    with pytest.raises(SystemExit):  # the same rank variable without rank 0's word
        _start(run_dir)
    clean_env.setenv("TORCHELASTIC_RUN_ID", "job")  # torchrun: started with rank 0
    _start(run_dir)  # its files are seconds old: this launch's


def test_ordinary_run_with_rank_variable_set_is_refused_at_the_command_line(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "resA"
    _old_run(run_dir)
    before = _fingerprint(run_dir)
    env = {k: v for k, v in os.environ.items() if k not in RANK_KEYS}
    done = subprocess.run(
        [sys.executable, str(ROOT / "src" / "train.py"), f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "RANK": "1", "LOCAL_RANK": "1"},
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "is not empty" in done.stderr
    assert _fingerprint(run_dir) == before


@pytest.mark.parametrize("saved", ["finished", "corrupt"])
def test_a_resume_that_would_stop_at_once_leaves_its_run_as_it_was(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, saved: str
) -> None:
    """Resuming a finished run with the same trainer.max_epochs (the printed resume command
    run again), or from a corrupt last.ckpt, stops before Hydra writes: the run keeps its
    saved config and its "finished" status with metrics (they were rewritten as "failed")."""
    import torch
    from omegaconf import OmegaConf

    from src.utils.run_dir import ProtectRunDir

    run_dir = tmp_path / "resA"
    _old_run(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if saved == "finished":
        progress = {"fit_loop": {"epoch_progress": {"current": {"processed": 3}}}}
        torch.save({"state_dict": {}, "global_step": 30, "loops": progress}, last)
    before = _fingerprint(run_dir)
    config = OmegaConf.create(
        {
            "hydra": {"run": {"dir": str(run_dir)}},
            "ckpt_path": str(last),
            "train": True,
            "trainer": {"max_epochs": 3},
        }
    )
    with pytest.raises(SystemExit) as stopped:
        ProtectRunDir().on_run_start(config)
    assert stopped.value.code == 1
    assert _fingerprint(run_dir) == before  # no .hydra/history either: nothing resumed
    config.trainer.max_epochs = 4
    if saved == "finished":  # an epoch left: the run resumes in place
        ProtectRunDir().on_run_start(config)
        assert (run_dir / ".hydra" / "history" / "001" / "config.yaml").is_file()


def test_a_bad_value_stops_before_a_run_directory_is_made_or_rewritten(tmp_path: Path) -> None:
    """A value config_checks refuses left an empty run (saved config, no status) in
    logs/; in a resume it rewrote the saved config of the run it was to resume."""
    done = run_cli("train.py", f"paths.log_dir={tmp_path}", "trainer.max_epochs=-3")
    assert done.returncode == 1 and "trainer.max_epochs=-3 must be" in done.stderr
    assert not (tmp_path / "train").exists()
    run_dir = tmp_path / "resA"
    _old_run(run_dir)
    before = _fingerprint(run_dir)
    done = run_cli(
        "train.py",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"hydra.run.dir={run_dir}",
        "model.optimizer.lr=-1",
    )
    assert done.returncode == 1 and "model.optimizer.lr=-1 must be" in done.stderr
    assert _fingerprint(run_dir) == before
