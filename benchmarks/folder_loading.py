"""Images/s of one training epoch from an image folder: the template (ImageFolderDataModule
+ ClassificationModule under Lightning's Trainer) against a plain loop over
torchvision.datasets.ImageFolder + DataLoader, same transforms, workers, net and optimizer.

    uv run --frozen python benchmarks/folder_loading.py [--images-per-class 180] [--workers 2]

Prints both rates and their ratio (template / plain; the target is >= 0.95). Figures only
count on a quiet machine.
"""

from __future__ import annotations

import argparse
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
    start, seen = 0.0, 0
    for epoch in range(epochs + 1):  # epoch 0 warms the workers up
        if epoch == 1:
            start, seen = time.perf_counter(), 0
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            seen += len(y)
    return seen / (time.perf_counter() - start)


def template(root: Path, workers: int, batch_size: int, epochs: int) -> float:
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from src.data.image_folder_datamodule import ImageFolderDataModule
    from src.models.classification_module import ClassificationModule

    class Clock(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:
                self.start = time.perf_counter()

        def on_train_end(self, trainer, pl_module) -> None:
            self.end = time.perf_counter()

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
    return epochs * len(dm.files["train"]) / (clock.end - clock.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up")
    parser.add_argument("--images-per-class", type=int, default=None, help="default: all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_digit_images(root, 32, 3, args.images_per_class)
        make_splits(root)
        run = (args.workers, args.batch_size, args.epochs)
        ours, theirs = template(root, *run), plain(root, *run)
    print(f"template (ImageFolderDataModule + Trainer): {ours:8.1f} images/s")
    print(f"plain (ImageFolder + DataLoader + loop):    {theirs:8.1f} images/s")
    print(f"ratio template / plain: {ours / theirs:.3f} (target >= 0.95; quiet machine only)")
    record("image folder: template / plain images/s", ours / theirs, "x",
           "ImageFolder + DataLoader loop", ">= 0.95x", ours / theirs >= 0.95)  # fmt: skip


if __name__ == "__main__":
    main()
