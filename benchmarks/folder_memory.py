"""Peak memory of one training epoch on an image folder larger than a memory budget.

    uv run --frozen python benchmarks/folder_memory.py [--images 24000] [--size 96] [--budget-mib 1536]

Writes random-noise PNGs (they do not compress) into a temporary folder, trains a small
CNN for one epoch through ImageFolderDataModule (lazily read, 2 workers), and samples the
summed RSS of the process and its loader workers every 50 ms. Prints the data set's size
decoded (what an in-memory module would hold, float32) and on disk, the peak RSS, and
the ratios; fails (exit 1) when the peak is over the budget.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.components.folder_splits import make_splits  # noqa: E402

MIB = 2**20


def write_noise(root: Path, images: int, size: int) -> int:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / "raw" / f"class_{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.png", compress_level=1)
    return sum(p.stat().st_size for p in (root / "raw").rglob("*.png"))


class PeakRSS(threading.Thread):
    """The largest sum of RSS over this process (or process ``pid``) and its children, sampled."""

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--budget-mib", type=int, default=1536)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import lightning as L
    from torchvision.transforms import v2

    from src.data.image_folder_datamodule import ImageFolderDataModule
    from src.models.classification_module import ClassificationModule
    from src.models.components.simple_cnn import SimpleCNN

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        on_disk = write_noise(root, args.images, args.size)
        make_splits(root, val=0.05, test=0.05)
        decoded = args.images * 3 * args.size * args.size * 4
        resize = v2.Resize([args.size, args.size], antialias=True)
        dm = ImageFolderDataModule(
            str(root), args.size, 3, {"train": resize, "eval": resize}, normalize=None,
            batch_size=64, num_workers=args.workers,
        )  # fmt: skip
        net = SimpleCNN(input_shape=[3, args.size, args.size], num_classes=4, channels=[8, 16])
        model = ClassificationModule(
            net, 4, optimizer=lambda params: torch.optim.Adam(params, lr=1e-3)
        )
        trainer = L.Trainer(
            max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        )  # fmt: skip
        monitor = PeakRSS()
        monitor.start()
        trainer.fit(model, datamodule=dm)
        monitor.done.set()
        monitor.join()
    budget = args.budget_mib * MIB
    print(f"data set: {args.images} images {args.size}x{args.size}x3, decoded (float32) "
          f"{decoded / MIB:.0f} MiB, on disk {on_disk / MIB:.0f} MiB")  # fmt: skip
    print(
        f"budget {budget / MIB:.0f} MiB; peak RSS (process + workers) {monitor.peak / MIB:.0f} MiB"
    )
    print(f"data / budget: {decoded / budget:.2f}x; peak / budget: {monitor.peak / budget:.2f}")
    if monitor.peak > budget:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
