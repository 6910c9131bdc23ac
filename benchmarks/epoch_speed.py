"""How fast is a template epoch, against a plain PyTorch loop over the same tensors?

Trains the lightning-hydra-template's MNIST MLP (784-64-128-64-10, BatchNorm,
Adam, batch 128) for one epoch on MNIST-shaped data made here (70,000 real
scikit-learn digits scaled to 28x28, written as IDX files and read by the
template's MNIST data module):

- through the template: ``train.py``'s config and objects as ``make train``
  builds them (default callbacks: checkpointing, early stopping, rich
  progress bar; CSV logger), timing one epoch of training plus validation;
- through a plain loop: the same net, optimizer, batch size and training
  tensors, timing one training epoch only;
- through a bare LightningModule (training step and optimizer only, no
  callbacks, logger or validation) over the same batches: the floor that
  Lightning's own per-step hooks set for any template built on it.

Then the start-up cost: the wall time of ``python src/train.py debug=fdr``
against ``python -c "import lightning"``.

Usage: ``make bench`` or ``python benchmarks/epoch_speed.py [--repeats N]``.
Add ``--device cuda`` on a GPU machine for trainer=gpu, bf16-mixed and
torch.compile against a compiled bf16 plain loop.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rootutils

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from lightning import Callback  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from src.data.components.idx import digits_as_mnist, write_mnist_like  # noqa: E402
from src.utils.instantiators import instantiate_run  # noqa: E402

LHT_MLP = ["model.net.lin1_size=64", "model.net.lin2_size=128", "model.net.lin3_size=64"]


class EpochTimer(Callback):
    """Wall time from the start of each training epoch to its end (validation included)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self.times.append(time.perf_counter() - self._start)

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()


def template_epoch(data_dir: Path, out_dir: Path, device: str) -> tuple[float, object]:
    overrides = ["data=mnist", "data.batch_size=128", "trainer.max_epochs=1", *LHT_MLP]
    overrides.append(f"paths.data_dir={data_dir}")
    if device == "cuda":
        overrides += ["trainer=gpu", "trainer.precision=bf16-mixed", "model.compile=true"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train.yaml", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
        cfg.extras.print_config = False
    HydraConfig.instance().set_config(cfg)
    torch.manual_seed(0)
    objects = instantiate_run(cfg)
    timer = EpochTimer()
    objects["trainer"].callbacks.append(timer)
    objects["trainer"].fit(objects["model"], datamodule=objects["datamodule"])
    return timer.times[0], objects["datamodule"]


def plain_epoch(x: torch.Tensor, y: torch.Tensor, device: str) -> float:
    """One training epoch of the same MLP as a hand-written PyTorch loop."""
    from src.models.components.simple_dense_net import SimpleDenseNet

    torch.manual_seed(0)
    net = SimpleDenseNet([1, 28, 28], 10, 64, 128, 64).to(device)
    x, y = x.to(device), y.to(device)
    step_net = net
    if device == "cuda":
        step_net = torch.compile(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
    criterion = torch.nn.CrossEntropyLoss()
    net.train()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for index in torch.randperm(len(x), device=device).split(128):
        optimizer.zero_grad()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = criterion(step_net(x[index]), y[index])
        loss.backward()
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bare_lightning_epoch(datamodule, device: str) -> float:
    """One training epoch of a minimal LightningModule: Lightning's own overhead."""
    import lightning as L
    from torch.nn import functional as F

    from src.models.components.simple_dense_net import SimpleDenseNet

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = SimpleDenseNet([1, 28, 28], 10, 64, 128, 64)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.001)

    torch.manual_seed(0)
    timer = EpochTimer()
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        max_epochs=1,
        logger=False,
        callbacks=[timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(Bare(), train_dataloaders=datamodule.train_dataloader())
    return timer.times[0]


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (median shown)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--skip-startup", action="store_true", help="only the epoch benchmark")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        images, labels = digits_as_mnist(70_000, seed=0)
        write_mnist_like(
            tmp_path / "data" / "MNIST" / "raw",
            (images[:60_000], labels[:60_000]),
            (images[60_000:], labels[60_000:]),
        )
        template, plain, bare = [], [], []
        for repeat in range(args.repeats):  # interleaved, so drifts in load hit all three
            seconds, datamodule = template_epoch(
                tmp_path / "data", tmp_path / f"run{repeat}", args.device
            )
            template.append(seconds)
            plain.append(plain_epoch(*datamodule.splits["train"], device=args.device))
            bare.append(bare_lightning_epoch(datamodule, args.device))

    t, p, b = (statistics.median(v) for v in (template, plain, bare))
    print(f"device: {args.device}, threads: {torch.get_num_threads()}, repeats: {args.repeats}")
    print(f"template epoch (train + val, 55k + 5k samples): {t:.3f} s  (runs: {fmt(template)})")
    print(f"plain PyTorch training epoch (55k samples):      {p:.3f} s  (runs: {fmt(plain)})")
    print(f"bare LightningModule training epoch:             {b:.3f} s  (runs: {fmt(bare)})")
    print(f"ratio template / plain: {t / p:.3f}x (target 1.15x)")
    print(f"ratio bare Lightning / plain: {b / p:.3f}x (Lightning's own floor)")

    if args.skip_startup:
        return
    python = sys.executable
    fdr = [python, "src/train.py", "debug=fdr", "extras.print_config=false"]
    bare = [python, "-c", "import lightning"]
    starts = [(wall_time(fdr), wall_time(bare)) for _ in range(args.repeats)]
    run_s = statistics.median(s for s, _ in starts)
    import_s = statistics.median(b for _, b in starts)
    print(f"python src/train.py debug=fdr: {run_s:.2f} s; import lightning alone: {import_s:.2f} s")
    print(f"start-up cost on top of importing Lightning: {run_s - import_s:.2f} s")


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    main()
