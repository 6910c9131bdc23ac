"""Figures: saved as PNG in the run directory and sent to every logger that takes images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning import Trainer
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

#: at most this many labelled ticks on a confusion matrix's axis
MAX_TICK_LABELS = 20
#: the spacings of labelled ticks, in classes: round numbers, so every labelled class of a
#: note_number head (40, 45, 50, ...) is a round note too
TICK_SPACINGS = (1, 2, 5, 10, 20, 25, 50, 100)


def tick_spacing(num_classes: int) -> int:
    """Label every k-th class, k the first of ``TICK_SPACINGS`` that labels at most
    ``MAX_TICK_LABELS`` of them."""
    for spacing in TICK_SPACINGS:
        if -(-num_classes // spacing) <= MAX_TICK_LABELS:
            return spacing
    return -(-num_classes // MAX_TICK_LABELS)


def weights_shown(trainer: Trainer, stage: str) -> str:
    """Which weights a figure of ``stage`` shows, for its title. In validation: the epoch
    just trained. In a test: the checkpoint Lightning loaded and the epoch it was saved at
    (after fit the best checkpoint, not the last epoch trained); a test of the module's
    weights as they are, without a checkpoint, says so."""
    if stage != "test":
        return f"epoch {trainer.current_epoch}"
    if not trainer.ckpt_path:
        return "current weights"
    import torch

    path = Path(trainer.ckpt_path)
    saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return f"{path.name}, epoch {saved['epoch']}" if "epoch" in saved else path.name


def log_figure(trainer: Trainer, name: str, figure: Any) -> Path:
    """Save ``figure`` as ``<run>/figures/<name>.png`` and log it to image-taking loggers."""
    import matplotlib.pyplot as plt

    path = Path(trainer.default_root_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    # the step Lightning logs this epoch's metrics at (the batches stepped: during
    # validation one behind global_step, which counts the step of the batch just trained),
    # so that TensorBoard shows a figure and its epoch's scalars at the same step
    step = trainer.fit_loop.epoch_loop._batches_that_stepped
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(name, figure, global_step=step, close=False)
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_figure(logger.run_id, figure, f"figures/{name}.png")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=name, images=[str(path)], step=step)
    plt.close(figure)
    return path
