"""What does a trial of an Optuna sweep cost against a lone run, and what do 2 workers gain?

All with ``debug=fdr`` (one batch of training, validation and test), so that the
fixed costs show, each in a fresh temporary log directory and study:

1. lone runs: ``python src/train.py debug=fdr``, one process each (10 by default);
2. a sweep of as many trials in one process: ``python src/train.py
   hparams_search=digits_optuna debug=fdr hydra.sweeper.n_trials=10``; its wall
   time per trial against a lone run's (target: at most 1x);
3. the same sweep through Hydra's joblib launcher (``hydra/launcher=parallel``),
   1 worker (``hydra.sweeper.n_jobs=1``: joblib runs it in the sweep's own process)
   against 2 (``hydra.sweeper.n_jobs=2``); the speed-up of the whole sweep, and of
   its trials: from the first trial's start to the last one's end, read from the
   trials' directories (``.hydra/config.yaml`` is written as a trial starts,
   ``run_status.json`` as it ends), and per trial once the workers are up (after
   the first batch: each worker imports Lightning when its first trial starts).
   Target: at least 1.6x on 2 cores.
4. threads: the 2-worker sweep again, training for real (``--epochs`` epochs of the
   digits MLP instead of ``debug=fdr``), once with the template's default
   (``extras.torch_threads=null``: the cores shared out, one thread per worker here)
   and once with 2 threads per worker (what torch takes by itself: 4 threads on 2
   cores); the ratio of their trial spans (target: the default at least as fast).

Usage: ``make bench-sweep`` or ``python benchmarks/sweep_overhead.py [--trials N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bench_results import record  # noqa: E402  (this folder: the script's own)

QUIET = ["extras.print_config=false"]


def timed(command: list[str]) -> float:
    """Wall time of ``command`` run from the project root; its output tail if it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    return elapsed


def sweep(
    trials: int, workers: int | None, logs: Path, run: list[str] | None = None
) -> dict[str, float]:
    """A fresh study of ``trials`` trials; ``workers``: None for the basic launcher.

    Returns the sweep's wall time, its start-up (to the first trial's start), the
    span of its trials (first start to last end), and the time per trial after
    the first batch (once the workers are up).
    """
    command = [
        sys.executable,
        "src/train.py",
        "hparams_search=digits_optuna",
        *(run if run is not None else ["debug=fdr"]),
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.storage=sqlite:///{logs}/optuna.db",
        f"paths.log_dir={logs}",
        *QUIET,
    ]
    if workers is not None:
        command += ["hydra/launcher=parallel", f"hydra.sweeper.n_jobs={workers}"]
    launched = time.time()
    wall = timed(command)
    task = "debug" if run is None else "train"
    jobs = {int(p.name): p for p in (logs / task / "multiruns").glob("*/*") if p.is_dir()}
    assert sorted(jobs) == list(range(trials)), f"trial directories in {logs}: {sorted(jobs)}"
    starts = {n: (job / ".hydra" / "config.yaml").stat().st_mtime for n, job in jobs.items()}
    ends = {n: (job / "run_status.json").stat().st_mtime for n, job in jobs.items()}
    first = workers or 1  # the trials of the first batch
    later = min(starts[n] for n in range(first, trials))
    return {
        "wall": wall,
        "startup": min(starts.values()) - launched,
        "trials": max(ends.values()) - min(starts.values()),
        "steady": (max(ends.values()) - later) / (trials - first),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per sweep, lone runs")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (threads)")
    args = parser.parse_args()
    n = args.trials
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}, trials: {n}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lone = [
            timed(
                [sys.executable, "src/train.py", "debug=fdr", f"paths.log_dir={tmp}/lone", *QUIET]
            )
            for _ in range(n)
        ]
        one = sweep(n, None, tmp / "sweep")
        by_workers = {w: sweep(n, w, tmp / f"joblib_{w}") for w in (1, 2)}
        training = [f"trainer.max_epochs={args.epochs}", "logger=none"]
        by_threads = {
            threads: sweep(n, 2, tmp / f"threads_{threads}", [*training, f"extras.torch_threads={threads}"])
            for threads in ("null", 2)
        }  # fmt: skip

    run = statistics.mean(lone)
    trial = one["wall"] / n
    print(
        f"lone run (python src/train.py debug=fdr), {n} runs: {run:.2f} s per run "
        f"(min {min(lone):.2f}, max {max(lone):.2f})"
    )
    print(
        f"sweep trial ({n}-trial sweep, one process): {trial:.2f} s per trial "
        f"({one['wall']:.1f} s in all: start-up {one['startup']:.1f} s, trials {one['trials']:.1f} s)"
    )
    print(f"ratio sweep trial / lone run: {trial / run:.3f}x (target <= 1x)")
    for w, got in by_workers.items():
        print(
            f"joblib, {w} worker{'s' if w > 1 else ''}: sweep {got['wall']:.1f} s "
            f"(start-up {got['startup']:.1f} s, trials {got['trials']:.1f} s), "
            f"{got['steady']:.2f} s per trial after the first batch"
        )
    one_w, two_w = by_workers[1], by_workers[2]
    print(
        f"speed-up of 2 workers over 1: whole sweep {one_w['wall'] / two_w['wall']:.2f}x, "
        f"trials {one_w['trials'] / two_w['trials']:.2f}x, after the first batch "
        f"{one_w['steady'] / two_w['steady']:.2f}x (target >= 1.6x)"
    )
    default, two = by_threads["null"], by_threads[2]
    for label, got in (("default threads (1 per worker)", default), ("2 threads per worker", two)):
        print(
            f"joblib, 2 workers, {args.epochs} epochs per trial, {label}: trials "
            f"{got['trials']:.1f} s, {got['steady']:.2f} s per trial after the first batch"
        )
    ratio = two["trials"] / default["trials"]
    print(f"speed-up of the default threads over 2 per worker: {ratio:.2f}x (target >= 1x)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    record("sweep trial / lone run (debug=fdr)", trial / run, "x", "python src/train.py",
           "<= 1x", trial / run <= 1)  # fmt: skip
    speedup = one_w["steady"] / two_w["steady"]
    record("sweep: 2 joblib workers / 1", speedup, "x", "1 worker", ">= 1.6x",
           speedup >= 1.6)  # fmt: skip
    record("sweep, 2 workers: default threads / 2 each", ratio, "x",
           "extras.torch_threads=2", ">= 1x", ratio >= 1)  # fmt: skip


if __name__ == "__main__":
    main()
