"""A run directory holds one run: a reused one is refused before anything is written,
unless the run resumes that directory's own checkpoint (then its configs are kept)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from src.utils.run_dir import check_run_dir
from tests.conftest import run_cli


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
