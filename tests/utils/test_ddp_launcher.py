"""The rank bookkeeping of trainer=ddp_sim's launcher, on stand-in processes: which
rank failed, and no rank process outliving its job (a hanging one is killed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from src.utils import ddp_launcher
from src.utils.ddp_launcher import failed_rank, finish_ranks


def rank(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


EXITS_3 = "raise SystemExit(3)"
HANGS = "import time; time.sleep(600)"


def test_the_rank_that_failed_is_named_and_a_hanging_one_killed() -> None:
    procs = [rank("pass"), rank(EXITS_3), rank(HANGS)]
    assert failed_rank(procs, grace_s=3) == (2, 3)
    assert procs[2].returncode is not None  # killed after the grace time, and waited for


def test_ranks_killed_by_us_are_not_the_failure() -> None:
    procs = [rank(HANGS)]
    assert failed_rank(procs, grace_s=0.5) is None
    assert procs[0].returncode == -9


@pytest.mark.parametrize("failed", [False, True])
def test_finish_ranks_leaves_no_process(monkeypatch, failed: bool) -> None:
    monkeypatch.setattr(ddp_launcher, "FINISHED_GRACE_S", 1.0)
    monkeypatch.setattr(ddp_launcher, "FAILED_GRACE_S", 0.5)
    procs = [rank("pass"), rank(HANGS)]
    monkeypatch.setattr(ddp_launcher, "RANK_PROCESSES", list(procs))
    finish_ranks(failed)
    assert [p.returncode for p in procs] == [0, -9]
    assert ddp_launcher.RANK_PROCESSES == []
