"""A confusion matrix per classification head at the end of validation and test."""

from __future__ import annotations

from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer

from src.data.components.class_labels import class_labels
from src.utils.figures import log_figure, tick_spacing, weights_shown
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class ConfusionMatrix(Callback):
    """Counts (true, predicted) pairs of every head over a validation or test epoch,
    then draws them (rows: true class, columns: predicted; colour: the share of the row,
    numbers: counts when there are at most 20 classes). The ticks name the classes as the
    data module does (``class_labels``: a VIMH head's parameter values, folder
    names; else the class indices), every k-th of them when there are more than 20, and the
    axes name the head ("true note_number"). The title names the weights: the epoch
    validated, or the checkpoint tested and its epoch.

    Works with any module whose ``class_predictions`` names its classification
    heads; a task without classes produces nothing. Files:
    ``<run>/figures/confusion_matrix_<stage>[_<head>].png`` (the validation one
    is overwritten each epoch; loggers keep every epoch's).

    Args:
        stages: which of "val" and "test" to draw.
    """

    def __init__(self, stages: tuple[str, ...] = ("val", "test")) -> None:
        self.stages = tuple(stages)
        self.counts: dict[str, torch.Tensor] = {}
        self.said_classless = False

    def _update(self, pl_module: LightningModule, outputs: dict[str, Any]) -> None:
        heads = pl_module.class_predictions(outputs["outputs"], outputs["targets"])
        if not heads and not self.said_classless:
            # a regression task: the callback draws nothing, which left the user looking
            # for figures that never came; say so once
            self.said_classless = True
            log.warning(
                f"ConfusionMatrix draws nothing: {type(pl_module).__name__}'s task has no "
                "classification head (its class_predictions are empty). Remove the callback "
                "(callbacks.confusion_matrix=null)."
            )
        for head, (predicted, true, num_classes) in heads.items():
            pairs = true.long() * num_classes + predicted.long()
            counts = torch.bincount(pairs.cpu(), minlength=num_classes**2)
            counts = counts.reshape(num_classes, num_classes)
            self.counts[head] = self.counts[head] + counts if head in self.counts else counts

    def _draw(self, trainer: Trainer, stage: str) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            self.counts.clear()
            return
        import matplotlib.pyplot as plt

        for head, counts in self.counts.items():
            names = class_labels(trainer.datamodule, head, len(counts))
            rates = counts.float() / counts.sum(dim=1, keepdim=True).clamp_min(1)
            size = min(12.0, 2.0 + 0.4 * len(counts))
            figure, axes = plt.subplots(figsize=(size + 1.5, size))
            image = axes.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
            figure.colorbar(
                image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class"
            )
            every = tick_spacing(len(counts))
            ticks = range(0, len(counts), every)
            shown = [names[i] for i in ticks]
            vertical = max(len(name) for name in shown) > 3  # long names do not fit side by side
            axes.set_xticks(ticks, shown, rotation=90 if vertical else 0)
            axes.set_yticks(ticks, shown)
            if every > 1:  # a mark for every class, the label on every k-th
                axes.set_xticks(range(len(counts)), minor=True)
                axes.set_yticks(range(len(counts)), minor=True)
            if len(counts) <= 20:
                for (row, col), value, rate in zip(
                    torch.cartesian_prod(
                        torch.arange(len(counts)), torch.arange(len(counts))
                    ).tolist(),
                    counts.flatten().tolist(),
                    rates.flatten().tolist(),
                    strict=True,
                ):
                    if value:  # white on the dark cells
                        colour = "white" if rate > 0.5 else "black"
                        axes.text(
                            col, row, value, ha="center", va="center", fontsize=7, color=colour
                        )
            what = head or "class"
            labelled = "" if every == 1 else f" (labels every {every} classes)"
            axes.set_xlabel(f"predicted {what}{labelled}")
            counted = " (numbers: counts)" if len(counts) <= 20 else ""
            axes.set_ylabel(f"true {what}{counted}")
            title = f"{stage} {head}".strip()
            axes.set_title(f"{title}, {weights_shown(trainer, stage)}")
            suffix = f"_{head}" if head else ""
            log_figure(trainer, f"confusion_matrix_{stage}{suffix}", figure)
        self.counts.clear()

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if "val" in self.stages and not trainer.sanity_checking:
            self._update(pl_module, outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if "test" in self.stages:
            self._update(pl_module, outputs)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "val" in self.stages:
            self._draw(trainer, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "test" in self.stages:
            self._draw(trainer, "test")
