"""Peak memory of one training epoch on a VIMH data set larger than a memory budget
(``data.in_memory=false``).

    uv run --frozen python benchmarks/vimh_memory.py [--records 300000] [--size 128]
        [--budget-mib 1536] [--workers 0] [--pss]

Makes a small VIMH data set with the generator (for a real ``vimh_dataset_info.json``:
parameter names and mappings), then writes a large one with the same parameters:
``--records`` records of ``--size`` x ``--size`` random pixels (random labels), written
chunk by chunk. Trains a small dense net (vimh_mlp, one hidden layer of 16: the data
path is measured, not the net's activations) for one epoch on it through ``src/train.py``
(``data.in_memory=false``, validation included, no test) in a child process, sampling
the summed RSS of that process and its loader workers every 50 ms (summed RSS counts
the pages forked workers share with their parent once per process, several times the
truth: with workers use --pss). The defaults write 4.6 GiB (3x the 1.5 GiB budget on
disk, 12x as float32 in memory). Prints the data set's
size on disk and as the in-memory path would hold it (float32), the peak RSS, and the
ratios; exits 1 when the peak is over the budget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from folder_memory import MIB, PeakMemory, PeakRSS  # noqa: E402  (this folder is on sys.path)

from src.vimh.format import INFO_FILE, record_dtype  # noqa: E402
from src.vimh.generator import generate_vimh  # noqa: E402
from src.vimh.plan import settings_from  # noqa: E402


def small_settings() -> dict:
    """configs/generate_vimh.yaml's settings (simple_saw) for 20 samples."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return settings_from(compose("generate_vimh.yaml", overrides=["size=20"]))


def write_large(directory: Path, info: dict, records: int, size: int) -> int:
    """``records`` random records (90% train, 10% test) of ``size`` x ``size`` x 1 pixels
    with ``info``'s parameters; returns the bytes written."""
    num_params = len(info["parameter_names"])
    dtype = record_dtype(num_params, size * size)
    rng = np.random.default_rng(0)
    counts = {"train": records - records // 10, "test": records // 10}
    step = max(1, 64 * MIB // dtype.itemsize)
    for split, count in counts.items():
        with open(directory / split, "wb") as out:
            for start in range(0, count, step):
                rows = np.zeros(min(step, count - start), dtype=dtype)
                rows["height"] = rows["width"] = size
                rows["channels"], rows["num_labels"] = 1, num_params
                rows["spec_min_db"], rows["spec_max_db"] = -80.0, 0.0
                rows["labels"][:, :, 0] = np.arange(num_params)
                rows["labels"][:, :, 1] = rng.integers(0, 256, (len(rows), num_params))
                rows["pixels"] = rng.integers(0, 256, rows["pixels"].shape, dtype=np.uint8)
                rows.tofile(out)
    info = {**info, "height": size, "width": size, "channels": 1,
            "train_samples": counts["train"], "test_samples": counts["test"]}  # fmt: skip
    (directory / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return records * dtype.itemsize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=300000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--budget-mib", type=int, default=1536)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--pss", action="store_true", help="sum PSS instead of RSS (workers)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        small = generate_vimh(small_settings(), Path(folder))
        info = json.loads((small / INFO_FILE).read_text())
        large = Path(folder) / "large"
        large.mkdir()
        on_disk = write_large(large, info, args.records, args.size)
        command = [
            sys.executable, str(ROOT / "src" / "train.py"), "data=vimh", f"data.data_dir={large}",
            "data.generate=false", "data.in_memory=false", f"data.num_workers={args.workers}",
            "model=vimh_mlp", "model.net.hidden_sizes=[16]", "trainer.max_epochs=1", "test=false", "logger=none",
            "callbacks=default", "~callbacks.rich_progress_bar", "extras.print_config=false", "+trainer.enable_progress_bar=false",
            f"hydra.run.dir={Path(folder) / 'run'}",
        ]  # fmt: skip
        child = subprocess.Popen(command, cwd=ROOT)
        monitor = (PeakMemory if args.pss else PeakRSS)(child.pid)
        monitor.start()
        code = child.wait()
        monitor.done.set()
        monitor.join()
        if code:
            raise SystemExit(f"training failed (exit {code})")
        import torch

        saved = torch.load(Path(folder) / "run" / "checkpoints" / "last.ckpt", weights_only=True)
        steps = saved["global_step"]
    budget = args.budget_mib * MIB
    in_memory = args.records * args.size * args.size * 4
    print(f"data set: {args.records} records {args.size}x{args.size}x1, on disk "
          f"{on_disk / MIB:.0f} MiB, in memory (float32) {in_memory / MIB:.0f} MiB")  # fmt: skip
    train = round((args.records - args.records // 10) * 0.9)  # data.val_fraction 0.1
    print(
        f"trained one epoch: {steps} steps of 64 of the {train} training records ({train // 64} "
        "full batches: the net has BatchNorm, so the incomplete last one is dropped)"
    )
    kind = "PSS" if args.pss else "RSS"
    print(f"budget {budget / MIB:.0f} MiB; peak {kind} (train.py + {args.workers} workers) "
          f"{monitor.peak / MIB:.0f} MiB")  # fmt: skip
    for pid, part in getattr(monitor, "parts", {}).items():
        private = part["Private_Clean"] + part["Private_Dirty"]
        print(f"  pid {pid}: PSS {part['Pss'] / MIB:.0f} MiB, private (USS) {private / MIB:.0f} "
              f"MiB, shared (RSS part) {(part['Rss'] - private) / MIB:.0f} MiB")  # fmt: skip
    print(f"data / budget: {in_memory / budget:.2f}x (on disk {on_disk / budget:.2f}x); "
          f"peak / budget: {monitor.peak / budget:.2f}")  # fmt: skip
    if monitor.peak > budget:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
