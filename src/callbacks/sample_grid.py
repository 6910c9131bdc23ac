"""A grid of test inputs, titled with predicted and true labels."""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer

from src.data.components.class_labels import class_labels
from src.utils.figures import log_figure, weights_shown
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class SampleGrid(Callback):
    """Draws the first ``num_samples`` test inputs with "predicted / true" titles
    (red when wrong) into ``<run>/figures/samples_test.png``; the figure's title names
    the head and the checkpoint tested. The classes are named as the data module names
    them (``class_labels``: a VIMH note_number head's MIDI notes, folder names;
    else the class indices).

    Inputs are images (C, H, W) drawn as grey images (the first channel; row 0 at the
    bottom where the data module's ``image_origin`` is ``"lower"``: spectrograms, low
    frequencies down) or 1-D signals drawn as curves. Needs a module with
    ``class_predictions``; with several heads the titles show the first head (named in the
    figure's title).

    Args:
        num_samples: how many inputs to draw.
    """

    def __init__(self, num_samples: int = 16) -> None:
        self.num_samples = num_samples
        self.inputs: list[torch.Tensor] = []
        self.labels: list[tuple[int, int]] = []
        self.head = ""
        self.num_classes = 0
        self.said_classless = False

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        missing = self.num_samples - len(self.labels)
        heads = pl_module.class_predictions(outputs["outputs"], outputs["targets"])
        if not heads and not self.said_classless:  # a regression: no grid, and a word why
            self.said_classless = True
            log.warning(
                f"SampleGrid draws nothing: {type(pl_module).__name__}'s task has no "
                "classification head to title the samples with. Remove the callback "
                "(callbacks.sample_grid=null)."
            )
        if missing <= 0 or not heads:
            return
        self.head, (predicted, true, self.num_classes) = next(iter(heads.items()))
        x = batch[0] if isinstance(batch, (tuple, list)) else batch["x"]
        self.inputs += list(x[:missing].detach().cpu().float())
        self.labels += list(zip(predicted[:missing].tolist(), true[:missing].tolist(), strict=True))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.labels or not trainer.is_global_zero:
            return
        import matplotlib.pyplot as plt

        columns = min(8, len(self.labels))
        rows = math.ceil(len(self.labels) / columns)
        figure, axes = plt.subplots(
            rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False
        )
        for ax in axes.flat:
            ax.axis("off")
        origin = getattr(trainer.datamodule, "image_origin", "upper")
        names = class_labels(trainer.datamodule, self.head, self.num_classes)
        for ax, sample, (predicted, true) in zip(axes.flat, self.inputs, self.labels, strict=False):
            if sample.ndim >= 2:
                image = sample.reshape(-1, *sample.shape[-2:])[0].numpy()
                ax.imshow(image, cmap="gray", origin=origin)
            else:
                ax.plot(sample.numpy(), linewidth=0.8)
            ax.set_title(
                f"{names[predicted]} / {names[true]}",
                fontsize=8,
                color="black" if predicted == true else "red",
            )
        head = f" {self.head}" if self.head else ""
        figure.suptitle(f"predicted / true{head} ({weights_shown(trainer, 'test')})", fontsize=9)
        log_figure(trainer, "samples_test", figure)
        self.inputs.clear()
        self.labels.clear()
