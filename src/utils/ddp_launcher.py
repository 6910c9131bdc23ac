"""trainer=ddp_sim's DDP: a failing rank fails its job, not the whole process.

Lightning's subprocess launcher watches ranks 1..N-1 from a thread and, when one
exits with an error, SIGKILLs them all and the main process too (so that no rank
hangs in a collective). In a multirun that main process is the sweep: every later
job is lost, and no summary is written. Its child processes are also never waited
for, so a rank can outlive its job.

``JobScopedDDPStrategy`` is Lightning's ``DDPStrategy`` with a launcher that starts
the same processes without that thread. On CPU (gloo) a rank that exits breaks its
peers' collectives at once, so rank 0's ``fit`` or ``test`` raises; the launcher then
stops the other ranks and raises ``RankFailedError`` naming the rank that failed.
``finish_ranks()``, called when the job ends (``src/utils/ddp.py``), waits for the
job's rank processes and kills any that hang, so none outlives its job.

Only for gloo: an NCCL rank blocked in a collective does not notice a dead peer, so
``trainer=ddp`` keeps Lightning's own launcher.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)

# the rank processes started in this process, until finish_ranks() has ended them
RANK_PROCESSES: list[subprocess.Popen] = []
# seconds a rank may take to end after rank 0 failed before it is killed (it may be
# blocked in a collective with a dead peer), and to end after a finished job
FAILED_GRACE_S = 5.0
FINISHED_GRACE_S = 60.0


class RankFailedError(RuntimeError):
    """A rank process of a DDP job exited with an error."""


def failed_rank(procs: list[subprocess.Popen], grace_s: float) -> tuple[int, int] | None:
    """(rank, exit code) of the first rank process that failed on its own, waiting up to
    ``grace_s`` seconds for each to end; any still running after that is killed."""
    killed = set()
    for proc in procs:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed.add(proc.pid)
    for rank, proc in enumerate(procs, start=1):
        if proc.returncode != 0 and proc.pid not in killed:
            return rank, proc.returncode
    return None


def finish_ranks(failed: bool) -> None:
    """End the rank processes this process started: wait for them after a finished job
    (killing any that hang), kill them after a failed one."""
    grace = FAILED_GRACE_S if failed else FINISHED_GRACE_S
    for proc in RANK_PROCESSES:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning(f"DDP rank process {proc.pid} did not end with its job: killed.")
            proc.kill()
            proc.wait()
    RANK_PROCESSES.clear()


class JobScopedLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher without its kill-everything watcher thread."""

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(
            num_devices=self.num_processes, num_nodes=self.num_nodes
        )
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            RANK_PROCESSES.extend(self.procs)
        _set_num_threads_if_needed(num_processes=self.num_processes)
        if not self.procs:  # a rank > 0, or processes started by torchrun or SLURM
            return function(*args, **kwargs)
        try:  # fit, then test in the same processes
            return function(*args, **kwargs)
        except BaseException as error:
            failed = failed_rank(self.procs, FAILED_GRACE_S)
            if failed is None:
                raise
            rank, code = failed
            raise RankFailedError(
                f"DDP rank {rank} (process {self.procs[rank - 1].pid}) exited with code "
                f"{code}; its traceback is in this run's log, after rank 0's "
                f"{type(error).__name__}."
            ) from error


class JobScopedDDPStrategy(DDPStrategy):
    """``DDPStrategy`` whose processes end with their job (see the module docstring)."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:  # not torchrun's or SLURM's
            self._launcher = JobScopedLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes
            )
