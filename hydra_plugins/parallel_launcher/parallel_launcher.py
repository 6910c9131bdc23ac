"""``hydra/launcher=parallel``: Hydra's joblib launcher, with output a person can follow.

The plugin's launcher numbers the jobs it lists from 0 at every batch (``#0``, ``#1``,
then ``#0``, ``#1`` again for a sweeper's second batch, whose jobs are 2 and 3), and its
workers write to the one console with nothing to tell whose line is whose. This one lists
each job under its number in the sweep (the number of its directory), and, when two or
more workers run at once, starts every line a job writes to stdout and stderr with
``[job <n>]``. Such a job's console is no terminal for rich (no live progress bar: two
workers' bars would redraw over each other); its log file is as in any other run.

This module stays light (Hydra imports it at every start): joblib is imported at launch.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

log = logging.getLogger(__name__)
LINES = re.compile(r"[^\n]*\n|[^\n]+")


class LinePrefixed:
    """A text stream that writes ``prefix`` at the start of each line into ``stream``,
    and hands each finished line on at once, whole (so the lines of two processes
    writing to the same console do not cut into each other). It reports no terminal."""

    def __init__(self, stream: IO[str], prefix: str) -> None:
        self.stream, self.prefix = stream, prefix
        self.at_line_start = True

    def write(self, text: str) -> int:
        out = []
        for piece in LINES.findall(text):  # whole lines, then what is left of a line
            if self.at_line_start:
                out.append(self.prefix if piece != "\n" else self.prefix.rstrip())
            out.append(piece)
            self.at_line_start = piece.endswith("\n")
        self.stream.write("".join(out))
        if "\n" in text:
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def terminal_columns(stream: IO[str]) -> int:
    """The width of the terminal ``stream`` writes to (0: not a terminal, or unknown)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 0
    except (AttributeError, OSError, ValueError):
        return 0


def run_prefixed(idx: int, prefix: bool, *args: Any) -> JobReturn:
    """Job ``idx`` of the sweep in this worker; its console lines prefixed when ``prefix``.

    On a terminal, rich is told the columns the prefix leaves (``COLUMNS``), so that its
    tables and bars are not wrapped by the terminal."""
    from hydra_plugins.hydra_joblib_launcher._core import execute_job

    if not prefix:
        return execute_job(idx, *args)
    tag = f"[job {idx}] "
    saved = sys.stdout, sys.stderr
    columns, saved_columns = terminal_columns(saved[0]), os.environ.get("COLUMNS")
    if columns > 2 * len(tag) and saved_columns is None:
        os.environ["COLUMNS"] = str(columns - len(tag))
    sys.stdout, sys.stderr = LinePrefixed(saved[0], tag), LinePrefixed(saved[1], tag)
    try:
        return execute_job(idx, *args)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = saved
        if saved_columns is None:
            os.environ.pop("COLUMNS", None)


class ParallelLauncher(JoblibLauncher):
    """Hydra's ``JoblibLauncher``: the same settings, loky workers and job directories."""

    def workers(self, jobs: int) -> int:
        """Worker processes that run ``jobs`` jobs at once (joblib: -1, every core)."""
        from joblib import cpu_count

        n_jobs = int(self.joblib.get("n_jobs") or 1)
        return min(jobs, cpu_count() if n_jobs < 0 else n_jobs)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from hydra.core.singleton import Singleton
        from hydra.core.utils import configure_log, setup_globals
        from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
        from joblib import Parallel, delayed

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        settings = dict(self.joblib, backend="loky")  # Hydra's plugin: loky, never threads
        process_joblib_cfg(settings)
        workers = self.workers(len(job_overrides))
        log.info(
            f"Launching {len(job_overrides)} job{'s' if len(job_overrides) != 1 else ''}, "
            f"{workers} at a time (joblib workers), "
            f"sweep output dir : {sweep_dir}"
        )
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        prefix = int(self.joblib.get("n_jobs") or 1) != 1  # several workers: whose line?
        state = Singleton.get_state()
        runs = Parallel(**settings)(
            delayed(run_prefixed)(
                idx, prefix, overrides, self.hydra_context, self.config, self.task_function, state
            )
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx)
        )
        assert all(isinstance(run, JobReturn) for run in runs)
        return list(runs)
