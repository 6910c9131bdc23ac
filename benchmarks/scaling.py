"""Does the in-memory path scale? Epoch time and peak memory for growing data and two nets.

Each case runs in its own process (so each peak is its own): MNIST-shaped data
(scikit-learn's real digits scaled to 28x28, as ``benchmarks/epoch_speed.py``)
of 5k, 70k (LHT's 55k/5k/10k) and 220k samples, written as IDX files and read by
the template's MNIST data module; one template epoch (train + validation, default
callbacks) of LHT's MLP (64-128-64) and of a wide one (512-512-256).

Printed per case: epoch seconds and seconds per 1k training samples (the time is
linear when that column is flat), the float32 size of the data, the process's
peak RSS, and the peak above what the process held before the data were read,
divided by the data's size (target: <= 1.5x, for data of 100 MB and more: below that,
Lightning's own allocations of some tens of MB dominate): the data are read while the run is built
(the model's input size comes from them), so the baseline is taken just before.

Usage: ``python benchmarks/scaling.py [--sizes 5000,70000,220000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rootutils

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from bench_results import record  # noqa: E402  (this folder: the script's own)

NETS = {
    "lht_mlp": ["model.net.lin1_size=64", "model.net.lin2_size=128", "model.net.lin3_size=64"],
    "wide_mlp": ["model.net.lin1_size=512", "model.net.lin2_size=512", "model.net.lin3_size=256"],
}


def split_of(total: int) -> list[int]:
    """LHT's 55k/5k/10k at 70k; other sizes keep a 5% val and a test of at most 10k."""
    if total == 70_000:
        return [55_000, 5_000, 10_000]
    test = min(10_000, total // 10)
    val = max(total // 20, 1)
    return [total - val - test, val, test]


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def write_data(total: int, directory: Path) -> None:
    """MNIST-format files of ``total`` samples under ``directory``. Run in a process of its
    own: making them costs more memory than training on them, and Linux hands a process's
    peak RSS on to the children it starts, so the parent must stay small."""
    from src.data.components.idx import digits_as_mnist, write_mnist_like

    split = split_of(total)
    images, labels = digits_as_mnist(total, seed=0)
    train_n = split[0] + split[1]
    write_mnist_like(
        directory / "MNIST" / "raw",
        (images[:train_n], labels[:train_n]),
        (images[train_n:], labels[train_n:]),
    )


def child(total: int, net: str, data_dir: str) -> dict:
    """One case, in this process: returns its figures."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from lightning import Callback
    from omegaconf import open_dict

    from src.utils.cpu import use_cpu_wisely
    from src.utils.instantiators import instantiate_run

    class EpochTimer(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.seconds = time.perf_counter() - self.start

    split = split_of(total)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            "data=mnist",
            f"data.train_val_test_split=[{split[0]},{split[1]},{split[2]}]",
            f"paths.data_dir={data_dir}",
            "trainer.max_epochs=1",
            "logger=none",
            *NETS[net],
        ]
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            cfg = compose("train.yaml", overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            cfg.paths.output_dir = str(Path(tmp) / "run")
            cfg.extras.print_config = False
        HydraConfig.instance().set_config(cfg)
        use_cpu_wisely(cfg)  # what train() does first
        torch.manual_seed(0)
        before = peak_rss_bytes()  # Lightning and the config loaded, no data yet
        objects = instantiate_run(cfg)  # reads the data (the model's size comes from it)
        timer = EpochTimer()
        objects["trainer"].callbacks.append(timer)
        objects["trainer"].fit(objects["model"], datamodule=objects["datamodule"])
        return {
            "total": total,
            "net": net,
            "train": split[0],
            "seconds": timer.seconds,
            "data_bytes": total * 28 * 28 * 4,
            "peak": peak_rss_bytes(),
            "before": before,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,70000,220000", help="total samples per case")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # TOTAL NET DATA_DIR
    parser.add_argument("--write", nargs=2, help=argparse.SUPPRESS)  # TOTAL DATA_DIR
    args = parser.parse_args()
    if args.write:
        write_data(int(args.write[0]), Path(args.write[1]))
        return
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.child[2])))
        return
    print(f"in-memory scaling, load {os.getloadavg()[0]:.2f}, one process per case")
    print(
        f"  {'samples':>8} {'net':<9} {'epoch s':>8} {'s/1k':>6} {'data MB':>8} "
        f"{'peak MB':>8} {'(peak-before)/data':>19}"
    )
    ratios, per_1k = [], {net: [] for net in NETS}
    for total in (int(s) for s in args.sizes.split(",")):
        data_dir = tempfile.mkdtemp()
        subprocess.run(
            [sys.executable, __file__, "--write", str(total), data_dir], check=True, cwd=ROOT
        )
        for net in NETS:
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(total), net, data_dir],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env={**os.environ, "HYDRA_FULL_ERROR": "1"},
            )
            if done.returncode:
                print(done.stderr[-2000:])
                raise SystemExit(f"case {total} {net} failed")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            mb = 1024 * 1024
            print(
                f"  {total:>8} {net:<9} {r['seconds']:8.2f} {1000 * r['seconds'] / r['train']:6.3f} "
                f"{r['data_bytes'] / mb:8.0f} {r['peak'] / mb:8.0f} "
                f"{(r['peak'] - r['before']) / r['data_bytes']:19.2f}"
            )
            if r["data_bytes"] >= 100 * mb:  # below, Lightning's own allocations dominate
                ratios.append((r["peak"] - r["before"]) / r["data_bytes"])
            per_1k[net].append(r["seconds"] / r["train"])
        shutil.rmtree(data_dir)
    if ratios:
        worst = max(ratios)
        record("in-memory peak above baseline / data, >=100 MB", worst, "x",
               "the data's float32 size", "<= 1.5x", worst <= 1.5)  # fmt: skip
    spread = max(max(v) / min(v) for v in per_1k.values())
    record("epoch time per 1k samples, largest / smallest", spread, "x",
           "the same net at another size", "linear", None)  # fmt: skip


if __name__ == "__main__":
    main()
