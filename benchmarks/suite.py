"""``make bench``: every CPU benchmark in turn, then one table of their headline figures.

Runs each benchmark script of this folder as its own process, with settings
that keep the whole suite to about 13 minutes on the 2-core build machines (the
memory case about 3 of them; each script's own defaults are larger), shows its
report as it goes, and ends with one row per headline figure: the figure, what
it is measured against, the target and whether it is met, and the machine's
load average before and after each benchmark (figures taken at a load much
above the core count do not count: rerun on a quiet machine).

Usage: ``make bench`` or ``python benchmarks/suite.py [--only NAME ...] [--list]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> the benchmark's command line (each figure in the table is one of its lines)
BENCHMARKS = {
    "epoch": ["benchmarks/epoch_speed.py", "--repeats", "5"],
    "scaling": ["benchmarks/scaling.py", "--sizes", "5000,70000,220000"],
    "loader": ["benchmarks/loader_speed.py", "--epochs", "3"],
    "folders": ["benchmarks/folder_loading.py", "--rounds", "5", "--epochs", "2"],
    "memory": ["benchmarks/folder_memory.py"],  # 4.6 GiB as float32, 3x the budget
    "sweep": ["benchmarks/sweep_overhead.py", "--trials", "6"],
    "vimh": [
        "benchmarks/vimh_generation.py",
        "--size",
        "8192",
        "--repeats",
        "3",
    ],  # NSMT-sized sets
}


def run(name: str, results: Path) -> tuple[float, float, float, int]:
    """Run one benchmark, its output shown as it comes; returns (seconds, load before,
    load after, exit status)."""
    print(f"\n=== {name}: python {' '.join(BENCHMARKS[name])}", flush=True)
    before = os.getloadavg()[0]
    start = time.perf_counter()
    env = {**os.environ, "BENCH_RESULTS": str(results)}
    done = subprocess.run([sys.executable, *BENCHMARKS[name]], cwd=ROOT, env=env)
    return time.perf_counter() - start, before, os.getloadavg()[0], done.returncode


def table(rows: list[dict], loads: dict[str, tuple[float, float, float, int]]) -> str:
    head = f"{'benchmark':<9} {'measure':<46} {'figure':>10}  {'against':<34} {'target':<10} met"
    lines = [head, "-" * len(head)]
    for row in rows:
        figure = (
            f"{row['value']:.3g}{row['unit']}"
            if row["unit"] == "x"
            else (f"{row['value']:.3g} {row['unit']}")
        )
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        lines.append(
            f"{row['benchmark']:<9} {row['measure']:<46} {figure:>10}  "
            f"{row['reference']:<34} {row['target']:<10} {met}"
        )
    lines.append("")
    for name, (seconds, before, after, status) in loads.items():
        state = "" if status == 0 else f"  FAILED (exit {status})"
        lines.append(
            f"{name:<9} ran {seconds:6.0f} s, load average {before:.2f} before, "
            f"{after:.2f} after{state}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="these only")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    args = parser.parse_args()
    if args.list:
        for name, command in BENCHMARKS.items():
            print(f"{name:<9} python {' '.join(command)}")
        return
    names = args.only or list(BENCHMARKS)
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    rows, loads = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results = Path(tmp) / f"{name}.jsonl"
            loads[name] = run(name, results)
            if results.exists():
                for line in results.read_text().splitlines():
                    rows.append({"benchmark": name, **json.loads(line)})
    print("\n" + table(rows, loads))
    if any(status for *_, status in loads.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
