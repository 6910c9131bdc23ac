"""How fast is a template epoch, against a bare LightningModule and a plain PyTorch loop?

Every contender does the same work: one epoch of training (LHT's MNIST MLP,
784-64-128-64-10 with BatchNorm, Adam, batch 128, 55k samples) and one pass of
validation (5k samples) over the same tensors, which the template's MNIST data
module reads from MNIST-format files made here (70,000 real scikit-learn digits
scaled to 28x28):

- the template: ``train.py``'s config and objects as ``make train`` builds them
  (default callbacks: checkpointing, early stopping, rich progress bar,
  divergence check; CSV logger; its CPU settings, ``src/utils/cpu.py``);
- a bare LightningModule: a training and a validation step computing the loss,
  no callbacks, logger or metrics, over the template's loaders, with the
  template's optimizer settings (and once more with ``torch.optim.Adam``'s
  defaults): the floor Lightning's loop sets for anything built on it (same
  process, so the same CPU settings);
- a plain PyTorch loop, in a process of its own that never imports Lightning
  (importing it changes how torch checks for CUDA at every optimizer step):
  once with ``torch.optim.Adam``'s defaults and once with the optimizer settings
  the template ships (``configs/model/optimizer/adam.yaml``).

Each of ``--repeats`` rounds runs every contender once, back to back (a drift in
the machine's load touches all); each run trains ``EPOCHS`` epochs and counts the
fastest of all but the first (warm-up: first-touch memory, lazy initialisation).
A round's ratios compare runs made under the same load: the median of the
rounds' ratios is the figure recorded, printed with its spread and beside the
ratio of each contender's best run. Then the start-up cost: what ``python src/train.py
debug=fdr`` takes after ``import lightning`` in the same process (Hydra, the
template's code, one batch of fit, validation and test), against the same for a
bare Lightning script doing that fast_dev_run.

Usage: ``make bench`` or ``python benchmarks/epoch_speed.py [--repeats N]``.
Add ``--device cuda`` on a GPU machine for trainer=gpu, bf16-mixed and
torch.compile against a compiled bf16 plain loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rootutils

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from bench_results import record  # noqa: E402  (this folder: the script's own)

LHT_MLP = ["model.net.lin1_size=64", "model.net.lin2_size=128", "model.net.lin3_size=64"]
BATCH = 128
EPOCHS = 3  # per run; --epochs


def warm(times: list[float]) -> float:
    """The epoch time of a run: the fastest of its epochs after the first."""
    return min(times[1:] or times)


def compose_template(data_dir: Path, out_dir: Path, device: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    overrides = ["data=mnist", f"data.batch_size={BATCH}", f"trainer.max_epochs={EPOCHS}", *LHT_MLP]
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
    return cfg


def epoch_timer():
    """A callback timing each training epoch, its validation included (Lightning runs the
    validation loop inside the training epoch, before ``on_train_epoch_end``)."""
    import torch
    from lightning import Callback

    class EpochTimer(Callback):
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

    return EpochTimer()


def template_epoch(cfg) -> tuple[float, object]:
    import torch

    from src.utils.instantiators import instantiate_run

    torch.manual_seed(0)
    objects = instantiate_run(cfg)
    timer = epoch_timer()
    objects["trainer"].callbacks.append(timer)
    objects["trainer"].fit(objects["model"], datamodule=objects["datamodule"])
    return warm(timer.times), objects["datamodule"]


def bare_lightning_epoch(datamodule, device: str, optimizer: dict) -> float:
    """A minimal LightningModule over the template's loaders, with ``torch.optim.Adam`` of
    these settings: Lightning's own cost."""
    import lightning as L
    import torch
    from torch.nn import functional as F

    from src.models.components.simple_dense_net import SimpleDenseNet

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = SimpleDenseNet([1, 28, 28], 10, 64, 128, 64)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), **optimizer)

    torch.manual_seed(0)
    timer = epoch_timer()
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        max_epochs=EPOCHS,
        logger=False,
        callbacks=[timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(
        Bare(),
        train_dataloaders=datamodule.train_dataloader(),
        val_dataloaders=datamodule.val_dataloader(),
    )
    return warm(timer.times)


def plain_epoch(tensors_file: str, optimizer: dict, device: str) -> float:
    """``EPOCHS`` epochs of training and validation as a hand-written loop (run in a
    process that never imports Lightning: ``--plain``); the warm epoch time."""
    import torch

    from src.models.components.simple_dense_net import SimpleDenseNet

    data = torch.load(tensors_file, weights_only=True)
    (x, y), (vx, vy) = (t.to(device) for t in data["train"]), (t.to(device) for t in data["val"])
    torch.manual_seed(0)
    net = SimpleDenseNet([1, 28, 28], 10, 64, 128, 64).to(device)
    step_net = torch.compile(net) if device == "cuda" else net
    adam = torch.optim.Adam(net.parameters(), **optimizer)
    criterion = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(EPOCHS):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        net.train()
        for index in torch.randperm(len(x), device=device).split(BATCH):
            adam.zero_grad()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = criterion(step_net(x.index_select(0, index)), y.index_select(0, index))
            loss.backward()
            adam.step()
        net.eval()
        correct = torch.zeros((), device=device)
        with torch.no_grad():
            for bx, by in zip(vx.split(BATCH), vy.split(BATCH), strict=True):
                with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                    correct += (step_net(bx).argmax(1) == by).sum()
        correct.item()  # waits for the device, as the template's metric does
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return warm(times)


def plain_in_own_process(tensors_file: Path, optimizer: dict, device: str) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--plain", str(tensors_file), json.dumps(optimizer), device],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(done.stdout.strip().splitlines()[-1])


def template_optimizer(cfg) -> dict:
    """The keyword arguments the template's optimizer config gives ``torch.optim.Adam``."""
    from omegaconf import OmegaConf

    settings = OmegaConf.to_container(cfg.model.optimizer, resolve=True)
    if settings.pop("_target_") != "torch.optim.Adam":
        raise SystemExit("this benchmark compares Adam; the template's optimizer is another")
    settings.pop("_partial_", None)
    return settings


# runs a script (argv[1:]) after importing Lightning, in one process, and prints the two
# times: what the script adds on top of the import, without the interpreter's start and
# exit, which a lone ``import lightning`` pays as well
STAGED = """
import os, runpy, sys, time
start = time.perf_counter()
import lightning
imported = time.perf_counter()
sys.argv = sys.argv[1:]
sys.path.insert(0, os.getcwd())
runpy.run_path(sys.argv[0], run_name="__main__")
print(f"STAGES {imported - start} {time.perf_counter() - imported}", file=sys.stderr)
"""


def staged(command: list[str]) -> tuple[float, float, float]:
    """(whole process, import lightning, the rest) in seconds for ``python <command>``."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", STAGED, *command], cwd=ROOT, check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    whole = time.perf_counter() - start
    line = next(x for x in done.stderr.splitlines() if x.startswith("STAGES "))
    imported, rest = (float(v) for v in line.split()[1:])
    return whole, imported, rest


# the same fast_dev_run as debug=fdr (one batch of fit, validation and test of the digits
# MLP) in a bare Lightning script: what any Lightning program pays beyond the import
BARE_FDR = """
import lightning as L, torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset
from src.models.components.simple_dense_net import SimpleDenseNet
d = load_digits()
data = TensorDataset(torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16,
                     torch.tensor(d.target))
class Bare(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = SimpleDenseNet([1, 8, 8], 10, 64, 128, 64)
    def training_step(self, batch, _):
        return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])
    validation_step = test_step = training_step
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters())
trainer = L.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False)
model = Bare()
trainer.fit(model, DataLoader(data, batch_size=128), DataLoader(data, batch_size=128))
trainer.test(model, DataLoader(data, batch_size=128))
"""


def startup(repeats: int) -> None:
    fdr = ["src/train.py", "debug=fdr", "extras.print_config=false"]
    with tempfile.TemporaryDirectory() as tmp:
        fdr.append(f"paths.log_dir={tmp}")
        bare_script = Path(tmp) / "bare_fdr.py"
        bare_script.write_text(BARE_FDR)
        runs = [(staged(fdr), staged([str(bare_script)])) for _ in range(repeats)]
    (whole, imported, rest), (bare_whole, _, bare_rest) = (
        [statistics.median(run[which][i] for run in runs) for i in range(3)] for which in (0, 1)
    )
    print(
        f"python src/train.py debug=fdr: {whole:.2f} s, of which import lightning {imported:.2f} s "
        f"and the run on top of it {rest:.2f} s (target 0.5 s); the same fast_dev_run as a bare "
        f"Lightning script: {bare_whole:.2f} s, {bare_rest:.2f} s on top of the import"
    )
    record("start-up on top of import lightning", rest, "s", "import lightning, same process",
           "<= 0.5 s", rest <= 0.5)  # fmt: skip
    record("start-up on top of a bare Lightning fdr", rest - bare_rest, "s",
           "the same fast_dev_run, bare", "-", None)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each contender")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--skip-startup", action="store_true", help="only the epoch benchmark")
    parser.add_argument("--plain", nargs=3, help=argparse.SUPPRESS)  # the plain loop's process
    args = parser.parse_args()
    if args.plain:
        print(plain_epoch(args.plain[0], json.loads(args.plain[1]), args.plain[2]))
        return

    import torch

    from src.data.components.idx import digits_as_mnist, write_mnist_like
    from src.utils.cpu import use_cpu_wisely

    runs: dict[str, list[float]] = {
        k: [] for k in ("template", "bare", "bare_default", "plain", "plain_same")
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        images, labels = digits_as_mnist(70_000, seed=0)
        write_mnist_like(
            tmp_path / "data" / "MNIST" / "raw",
            (images[:60_000], labels[:60_000]),
            (images[60_000:], labels[60_000:]),
        )
        cfg = compose_template(tmp_path / "data", tmp_path / "run0", args.device)
        use_cpu_wisely(cfg)  # what train() does first: every in-process contender gets it
        same = template_optimizer(cfg)
        tensors_file = tmp_path / "tensors.pt"
        for repeat in range(args.repeats):  # interleaved, so drifts in load hit all
            cfg = compose_template(tmp_path / "data", tmp_path / f"run{repeat}", args.device)
            seconds, datamodule = template_epoch(cfg)
            runs["template"].append(seconds)
            if not tensors_file.exists():
                parts = {s: list(datamodule.splits[s][:2]) for s in ("train", "val")}
                torch.save(parts, tensors_file)
            runs["bare"].append(bare_lightning_epoch(datamodule, args.device, same))
            runs["bare_default"].append(
                bare_lightning_epoch(datamodule, args.device, {"lr": 0.001})
            )
            runs["plain"].append(plain_in_own_process(tensors_file, {"lr": 0.001}, args.device))
            runs["plain_same"].append(plain_in_own_process(tensors_file, same, args.device))

    t, b, bd, p, s = (min(v) for v in runs.values())
    # each repeat runs every contender back to back: the ratio within a repeat compares
    # runs under the same load; their median is the figure that counts (on these shared
    # 2-core machines one contender's runs spread by up to 50% between repeats)
    pair_bare = [x / y for x, y in zip(runs["template"], runs["bare"], strict=True)]
    pair_plain = [x / y for x, y in zip(runs["template"], runs["plain_same"], strict=True)]
    pair_default = [x / y for x, y in zip(runs["template"], runs["plain"], strict=True)]
    pair_floor = [x / y for x, y in zip(runs["bare"], runs["plain_same"], strict=True)]
    print(
        f"device: {args.device}, threads: {torch.get_num_threads()}, repeats: {args.repeats}, "
        f"epochs per run: {EPOCHS} (the first not counted), load after: {os.getloadavg()[0]:.2f}"
    )
    print("one epoch: 55k training + 5k validation samples, batch 128")
    print(f"  template                         {t:.3f} s  (runs: {fmt(runs['template'])})")
    print(f"  bare LightningModule, same Adam  {b:.3f} s  (runs: {fmt(runs['bare'])})")
    print(f"  bare LightningModule, default    {bd:.3f} s  (runs: {fmt(runs['bare_default'])})")
    print(f"  plain loop, default Adam         {p:.3f} s  (runs: {fmt(runs['plain'])})")
    print(f"  plain loop, template's Adam {same}  {s:.3f} s  (runs: {fmt(runs['plain_same'])})")
    print("ratios, median of the repeats' own ratios (spread), then of each side's best run:")
    print(f"  template / bare Lightning (same optimizer): {ratio(pair_bare)}; best {t / b:.3f}x "
          "(target 1.05x)")  # fmt: skip
    print(f"  template / plain (template's Adam): {ratio(pair_plain)}; best {t / s:.3f}x "
          "(target 1.15x)")  # fmt: skip
    print(f"  template / plain (default Adam): {ratio(pair_default)}; best {t / p:.3f}x")
    print(f"  bare Lightning / plain (same Adam, Lightning's own floor): {ratio(pair_floor)}; "
          f"best {b / s:.3f}x")  # fmt: skip
    tb, tp, td = (statistics.median(v) for v in (pair_bare, pair_plain, pair_default))
    record("epoch: template / bare LightningModule", tb, "x", "bare Lightning, same Adam",
           "<= 1.05x", tb <= 1.05)  # fmt: skip
    record("epoch: template / plain loop, same optimizer", tp, "x",
           "plain loop, template's Adam", "<= 1.15x", tp <= 1.15)  # fmt: skip
    record("epoch: template / plain loop, default Adam", td, "x", "plain loop, default Adam",
           "-", None)  # fmt: skip
    if not args.skip_startup:
        startup(args.repeats)


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def ratio(pairs: list[float]) -> str:
    return f"{statistics.median(pairs):.3f}x ({min(pairs):.3f}-{max(pairs):.3f})"


if __name__ == "__main__":
    main()
