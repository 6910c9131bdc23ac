"""How fast is VIMH generation? Samples per second of each synth preset, against its target.

Generates ``--size`` samples of every preset in ``configs/synth/`` in this
process, the whole way (parameter draws, synthesis, spectrograms, files
written to a temporary directory), and prints samples/s beside the target set
for the 2-core build machines: 2,000/s for ``simple_saw`` and 500/s for the
ladder-filter presets, with one worker, and then with ``--workers`` worker
processes against one (target: 1.6x with 2). Each figure is the best of
``--repeats`` runs; the two worker counts alternate run by run, so a change in
the machine's load touches both.

Usage: ``python benchmarks/vimh_generation.py [--size N] [--repeats R] [--workers W]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time

import rootutils

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from bench_results import record  # noqa: E402  (this folder: the script's own)
from hydra import compose, initialize_config_dir  # noqa: E402

from src.vimh.generator import generate_vimh  # noqa: E402
from src.vimh.plan import settings_from  # noqa: E402

# samples/s on the 2-core build machines
TARGETS = {"simple_saw": 2000.0, "moog_basic": 500.0, "moog_envelope": 500.0}


def samples_per_second(preset: str, size: int, repeats: int, workers: list[int]) -> list[float]:
    """Samples/s of ``preset`` for each worker count (best of ``repeats``, interleaved)."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("generate_vimh.yaml", overrides=[f"synth={preset}", f"size={size}"])
    settings = settings_from(cfg)
    best = [float("inf")] * len(workers)
    for _ in range(repeats):
        for i, count in enumerate(workers):
            with (
                tempfile.TemporaryDirectory() as parent,
                contextlib.redirect_stdout(io.StringIO()),
            ):
                start = time.perf_counter()
                generate_vimh(settings, parent, workers=count)
                best[i] = min(best[i], time.perf_counter() - start)
    return [size / seconds for seconds in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000, help="samples per preset")
    parser.add_argument("--repeats", type=int, default=3, help="runs per preset; the best counts")
    parser.add_argument("--workers", type=int, default=2, help="worker processes against one")
    args = parser.parse_args()
    presets = sorted(p.stem for p in (ROOT / "configs" / "synth").glob("*.yaml"))
    print(
        f"VIMH generation: {args.size} samples per preset, best of {args.repeats}, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"  {'preset':<16} {'1 worker':>10} {'target':>7} {'ratio':>6}   "
        f"{args.workers} workers  vs 1 (target 1.6x)"
    )
    for preset in presets:
        one, many = samples_per_second(preset, args.size, args.repeats, [1, args.workers])
        target = TARGETS.get(preset)
        against = f"{target:7.0f} {one / target:6.2f}" if target else f"{'-':>7} {'-':>6}"
        print(f"  {preset:<16} {one:8.0f}/s {against}   {many:8.0f}/s  {many / one:5.2f}x")
        if target:
            record(f"VIMH {preset}: samples/s, 1 worker", one, "/s", f"{target:.0f}/s target",
                   f">= {target:.0f}/s", one >= target)  # fmt: skip
        record(f"VIMH {preset}: {args.workers} workers / 1", many / one, "x", "1 worker",
               ">= 1.6x", many / one >= 1.6)  # fmt: skip


if __name__ == "__main__":
    main()
