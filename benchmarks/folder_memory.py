"""Peak memory of one training epoch on an image folder larger than a memory budget.

    uv run --frozen python benchmarks/folder_memory.py [--images 25000] [--size 128]
        [--budget-mib 1536] [--workers 2] [--batch-size 64] [--streaming]

Writes random-noise PNGs (stored uncompressed: noise does not compress) into a
temporary folder, splits it (5% val, 5% test) and trains a small CNN (one 4-channel
conv block: the data path is measured, not the net) for one epoch, validation
included, through ``src/train.py data=image_folder`` in a child process: files read
lazily, decoded and resized in ``--workers`` loader workers per loader. It samples each
process of train.py's tree (train.py and its loader workers; the val loader's
persistent workers live beside the train loader's): RSS every 50 ms, PSS every 0.5 s.
``--streaming``: the folder is converted to litdata shards first (to_shards.py,
``--chunk-bytes``) and the epoch reads them (``data=streaming``); litdata keeps up to 4
chunks mapped in each worker, read ahead, so each worker holds about 4 x chunk_bytes of
chunk pages (with to_shards' default 64MB chunks the peak was 1680 MiB = 1.09 of the
budget, the train workers' mapped chunks 229-249 MiB each; 16MB is the default here).

What is held against the budget is the summed PSS (proportional set size, from
``/proc/<pid>/smaps_rollup``: a page mapped by k processes counts 1/k in each), which
adds up to the physical memory the tree holds, no page counted twice. It is the
conservative figure: it includes the resident pages of the libraries (``File``, about
300 MiB of torch and Lightning code, page cache the kernel can drop and read again).
The summed RSS is printed too, but it counts every page the forked workers share with
train.py (everything train.py had before the fork, copy-on-write) once per process:
with 4 workers it is 2-3x the memory in use. The defaults write 25,000 images of
128x128x3: 4.6 GiB as the float32 tensors an in-memory module would hold, 3.05x the
1.5 GiB budget (1.2 GiB of pixels on disk). Prints the data set's size, the peaks
(PSS and RSS, and each process at the PSS peak, split into anonymous, file-backed and
shared-memory pages: the batches in flight), the budget and the ratios; exits 1 when
the peak PSS is over the budget. Linux only (smaps_rollup).
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_results import record  # noqa: E402

from src.data.components.folder_splits import make_splits  # noqa: E402

MIB = 2**20


def write_part(job: tuple[str, int, int, int]) -> int:
    """Images ``start..stop`` of the noise folder (one process of the writing pool)."""
    from PIL import Image

    root, start, stop, size = job
    rng = np.random.default_rng(start)
    written = 0
    for i in range(start, stop):
        path = Path(root) / "raw" / f"class_{i % 4}" / f"{i:06d}.png"
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, compress_level=0)
        written += path.stat().st_size
    return written


def write_noise(root: Path, images: int, size: int, processes: int = 2) -> int:
    """``images`` noise PNGs in 4 classes under ``root/raw``; returns the bytes written."""
    for k in range(4):
        (root / "raw" / f"class_{k}").mkdir(parents=True, exist_ok=True)
    step = 1000
    jobs = [(str(root), s, min(s + step, images), size) for s in range(0, images, step)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return sum(pool.map(write_part, jobs))


class PeakRSS(threading.Thread):
    """The largest sum of RSS over process ``pid`` (None: this one) and its children."""

    def __init__(self, pid: int | None = None) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        me = psutil.Process(self.pid)
        while not self.done.wait(0.05):
            try:
                total = me.memory_info().rss
            except psutil.Error:  # the process has ended
                return
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)


def rollup(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` in bytes: Rss, Pss (and its Pss_Anon, Pss_File,
    Pss_Shmem parts on kernels 5.x+), Private_Clean, Private_Dirty, ..."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as text:
        for line in text.readlines()[1:]:
            name, value, *_ = line.split()
            fields[name.rstrip(":")] = int(value) * 1024
    return fields


class PeakMemory(PeakRSS):
    """Peaks of summed PSS (``peak``) and of summed RSS (``peak_rss``) over process ``pid``
    and its children, and each process's smaps_rollup at the PSS peak (``parts``).

    RSS is read every 50 ms (cheap); PSS every ``pss_every`` s: the kernel walks a
    process's page tables for it (20-30 ms for a process that has imported torch and
    Lightning), and sampling 5 processes every 50 ms would take one of the 2 cores."""

    def __init__(self, pid: int, pss_every: float = 0.5) -> None:
        super().__init__(pid)
        self.peak_rss, self.parts, self.pss_every = 0, {}, pss_every

    def run(self) -> None:
        me, last = psutil.Process(self.pid), 0.0
        while not self.done.wait(0.05):
            try:
                tree = [me, *me.children(recursive=True)]
            except psutil.Error:  # train.py has ended
                return
            rss = 0
            for process in tree:
                try:
                    rss += process.memory_info().rss
                except psutil.Error:  # a worker that has just ended
                    pass
            self.peak_rss = max(self.peak_rss, rss)
            if time.monotonic() - last >= self.pss_every:
                last = time.monotonic()
                self.sample_pss(tree)

    def sample_pss(self, tree: list[psutil.Process]) -> None:
        parts = {}
        for process in tree:
            try:
                parts[process.pid] = rollup(process.pid)
            except (OSError, ValueError):  # a worker that has just ended
                continue
        total = sum(part["Pss"] for part in parts.values())
        if total > self.peak:
            self.peak, self.parts = total, parts


def data_overrides(root: Path, args: argparse.Namespace) -> list[str]:
    """data=image_folder on ``root``; with ``--streaming``, the folder converted to shards
    first (src/tools/to_shards.py) and data=streaming on them."""
    size = f"data.image_size={args.size}"
    loader = [f"data.num_workers={args.workers}", f"data.batch_size={args.batch_size}"]
    folder = ["data=image_folder", f"data.root={root}", size, "data.normalize=null"]
    if not args.streaming:
        return folder + loader
    shards = root.parent / "shards"
    convert = [sys.executable, str(ROOT / "src" / "tools" / "to_shards.py"), *folder,
               "data.num_workers=2", f"output_dir={shards}", "num_workers=2",
               f"chunk_bytes={args.chunk_bytes}"]  # fmt: skip
    subprocess.run(convert, cwd=ROOT, check=True)
    return ["data=streaming", f"data.input_dir={shards}", size, *loader]


def train_command(data: list[str], run_dir: Path) -> list[str]:
    return [
        sys.executable, str(ROOT / "src" / "train.py"), *data,
        "model=cnn", "model.net.channels=[4]", "model.net.hidden_size=16",
        "trainer.max_epochs=1", "test=false", "logger=none", "callbacks=default",
        "~callbacks.rich_progress_bar", "extras.print_config=false",
        "+trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def report(args: argparse.Namespace, monitor: PeakMemory, on_disk: int) -> bool:
    """Print the figures and record the table's rows; returns whether the budget held."""
    budget = args.budget_mib * MIB
    decoded = args.images * 3 * args.size * args.size * 4
    print(f"data set: {args.images} images {args.size}x{args.size}x3, decoded (float32, as an "
          f"in-memory module holds it) {decoded / MIB:.0f} MiB, on disk {on_disk / MIB:.0f} MiB")  # fmt: skip
    print(f"budget {args.budget_mib} MiB; peak summed PSS (train.py + workers) "
          f"{monitor.peak / MIB:.0f} MiB; peak summed RSS {monitor.peak_rss / MIB:.0f} MiB "
          "(counts pages shared with train.py once per worker)")  # fmt: skip
    for pid, part in monitor.parts.items():
        kinds = ", ".join(f"{kind} {part.get('Pss_' + kind, 0) / MIB:.0f}"
                          for kind in ("Anon", "File", "Shmem"))  # fmt: skip
        private = part["Private_Clean"] + part["Private_Dirty"]
        who = "train.py" if pid == monitor.pid else f"worker {pid}"
        print(f"  {who}: PSS {part['Pss'] / MIB:.0f} MiB ({kinds}), private (USS) "
              f"{private / MIB:.0f} MiB, RSS {part['Rss'] / MIB:.0f} MiB")  # fmt: skip
    print(f"data / budget: {decoded / budget:.2f}x (on disk {on_disk / budget:.2f}x); "
          f"peak PSS / budget: {monitor.peak / budget:.2f}; peak RSS / budget: "
          f"{monitor.peak_rss / budget:.2f}")  # fmt: skip
    held, what = monitor.peak <= budget, "streaming shards" if args.streaming else "image folder"
    record(f"{what}: float32 data / memory budget", decoded / budget, "x",
           f"budget {args.budget_mib} MiB", ">= 3x", decoded / budget >= 3)  # fmt: skip
    record(f"{what}: peak PSS / memory budget", monitor.peak / budget, "x",
           f"train.py + {len(monitor.parts) - 1} workers", "<= 1x", held)  # fmt: skip
    record(f"{what}: peak summed RSS / memory budget", monitor.peak_rss / budget, "x",
           "shared pages counted per process", "-", None)  # fmt: skip
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=25000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--budget-mib", type=int, default=1536)
    parser.add_argument("--workers", type=int, default=2, help="per loader (train, val)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--streaming", action="store_true", help="from shards (data=streaming)")
    # litdata keeps up to 4 chunks of each worker mapped (read ahead): ~4 x chunk_bytes each
    parser.add_argument("--chunk-bytes", default="16MB", help="shard chunk size (--streaming)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        on_disk = write_noise(root, args.images, args.size)
        make_splits(root, val=0.05, test=0.05)
        data = data_overrides(root, args)
        child = subprocess.Popen(train_command(data, Path(folder) / "run"), cwd=ROOT)
        monitor = PeakMemory(child.pid)
        monitor.start()
        code = child.wait()
        monitor.done.set()
        monitor.join()
        if code:
            raise SystemExit(f"training failed (exit {code})")
    if not report(args, monitor, on_disk):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
