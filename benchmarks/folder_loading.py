"""Images/s of training epochs from an image folder: the template (ImageFolderDataModule
+ ClassificationModule under Lightning's Trainer) against a plain loop over
torchvision.datasets.ImageFolder + DataLoader, same transforms, workers, net and optimizer.

    uv run --frozen python benchmarks/folder_loading.py [--rounds 5] [--epochs 2] [--workers 2]

One epoch over the 1,797 digits takes under a second, and a single pair of runs spreads
+-20% on the 2-core machines (the main process and the loader workers share two
cores), so each digit is written ``--copies`` times (default 4: 7,188 PNGs, ~3.5 s an
epoch) and the script runs ``--rounds`` pairs, alternating which side goes first
(ABBA), each side with its own workers, one warm-up epoch and ``--epochs`` timed ones, of
which the fastest counts (a busy moment slows one epoch, never speeds it up). Prints
every pair's rates and ratio and the median of the pairs' ratios (template /
plain; the target is >= 0.95). Figures only count on a quiet machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_results import record  # noqa: E402  (this folder: the script's own)

from src.data.components.folder_splits import make_splits  # noqa: E402
from src.tools.example_folders import write_digit_images  # noqa: E402


def net() -> torch.nn.Module:
    from src.models.components.simple_cnn import SimpleCNN

    torch.manual_seed(0)
    return SimpleCNN(input_shape=[3, 32, 32], num_classes=10, channels=[32, 64])


def transform():
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize([32, 32], antialias=True)])


def plain(root: Path, workers: int, batch_size: int, epochs: int) -> float:
    """torchvision's ImageFolder over the training files, a hand-written loop."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    train = set((root / "splits" / "train.txt").read_text().split())
    pipeline = v2.Compose([v2.PILToTensor(), transform(), v2.ToDtype(torch.float32, scale=True)])
    data = ImageFolder(
        str(root / "raw"), transform=pipeline,
        is_valid_file=lambda p: str(Path(p).relative_to(root / "raw")) in train,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=True
    )
    model = net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    seconds = []
    for _ in range(epochs + 1):  # the first epoch warms the workers up
        start = time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return len(data) / min(seconds[1:])


def template(root: Path, workers: int, batch_size: int, epochs: int) -> float:
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from src.data.image_folder_datamodule import ImageFolderDataModule
    from src.models.classification_module import ClassificationModule

    class Clock(Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    dm = ImageFolderDataModule(
        str(root), 32, 3, {"train": transform(), "eval": transform()}, normalize=None,
        batch_size=batch_size, num_workers=workers,
    )  # fmt: skip
    model = ClassificationModule(
        net(), 10, optimizer=lambda params: torch.optim.Adam(params, lr=1e-3)
    )
    clock = Clock()
    trainer = L.Trainer(
        max_epochs=epochs + 1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[clock],
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return len(dm.files["train"]) / min(clock.seconds[1:])


def write_copies(root: Path, per_class: int | None, copies: int) -> None:
    """The digits as PNGs, each written ``copies`` times under its own name, so that an
    epoch lasts long enough to time (the 1,797 digits alone take under a second)."""
    raw = write_digit_images(root, 32, 3, per_class)
    for image in list(raw.glob("*/*.png")):
        for copy in range(1, copies):
            shutil.copyfile(image, image.with_name(f"{image.stem}_{copy}.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--epochs", type=int, default=2, help="timed epochs after one warm-up (the fastest counts)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="pairs of runs (ABBA order)")
    parser.add_argument("--images-per-class", type=int, default=None, help="default: all")
    parser.add_argument("--copies", type=int, default=4, help="files per digit image")
    args = parser.parse_args()
    sides = {"template": template, "plain": plain}
    ratios, best = [], {"template": 0.0, "plain": 0.0}
    print(f"{'pair':>4} {'template img/s':>15} {'plain img/s':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_copies(root, args.images_per_class, args.copies)
        make_splits(root)
        run = (args.workers, args.batch_size, args.epochs)
        for pair in range(args.rounds):
            order = ["template", "plain"] if pair % 2 == 0 else ["plain", "template"]
            rate = {side: sides[side](root, *run) for side in order}
            ratios.append(rate["template"] / rate["plain"])
            best = {side: max(best[side], rate[side]) for side in best}
            print(f"{pair + 1:>4} {rate['template']:>15.1f} {rate['plain']:>12.1f} "
                  f"{ratios[-1]:>6.3f}", flush=True)  # fmt: skip
    ratio = statistics.median(ratios)
    print(
        f"ratio template / plain, median of {len(ratios)} pairs: {ratio:.3f} "
        f"(spread {min(ratios):.3f}-{max(ratios):.3f}; target >= 0.95; quiet machine only)"
    )
    print(
        f"best run of each side: template {best['template']:.1f}, plain {best['plain']:.1f} "
        f"images/s, ratio {best['template'] / best['plain']:.3f}"
    )
    record("image folder: template / plain images/s", ratio, "x",
           "ImageFolder + DataLoader loop", ">= 0.95x", ratio >= 0.95)  # fmt: skip


if __name__ == "__main__":
    main()
