"""How fast is VIMH generation? Samples per second of each synth preset, against its target.

Generates ``--size`` samples of every preset in ``configs/synth/`` in this
process, the whole way (parameter draws, synthesis, spectrograms, files
written to a temporary directory), and prints samples/s beside the target set
for the 2-core build machines: 2,000/s for ``simple_saw`` and 500/s for the
ladder-filter presets. Each preset runs ``--repeats`` times; the best counts.

Usage: ``python benchmarks/vimh_generation.py [--size N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time

import rootutils

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from hydra import compose, initialize_config_dir  # noqa: E402

from src.vimh.generator import generate_vimh, settings_from  # noqa: E402

# samples/s on the 2-core build machines
TARGETS = {"simple_saw": 2000.0, "moog_basic": 500.0, "moog_envelope": 500.0}


def samples_per_second(preset: str, size: int, repeats: int) -> float:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("generate_vimh.yaml", overrides=[f"synth={preset}", f"size={size}"])
    settings = settings_from(cfg)
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as parent, contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            generate_vimh(settings, parent)
            best = min(best, time.perf_counter() - start)
    return size / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000, help="samples per preset")
    parser.add_argument("--repeats", type=int, default=3, help="runs per preset; the best counts")
    args = parser.parse_args()
    presets = sorted(p.stem for p in (ROOT / "configs" / "synth").glob("*.yaml"))
    print(f"VIMH generation: {args.size} samples per preset, best of {args.repeats}")
    for preset in presets:
        rate = samples_per_second(preset, args.size, args.repeats)
        target = TARGETS.get(preset)
        against = f"target {target:6.0f}  ratio {rate / target:5.2f}" if target else "no target"
        print(f"  {preset:<16} {rate:8.0f} samples/s   {against}")


if __name__ == "__main__":
    main()
