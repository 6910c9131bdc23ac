"""Gradient norms (global and per layer) and, optionally, histograms."""

from __future__ import annotations

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger


class GradientStats(Callback):
    """Every ``every_n_steps`` optimizer steps, before the step: writes ``grad/norm``
    (the global L2 norm), and with ``per_layer`` ``grad/<parameter>`` norms; with
    ``histograms`` also sends gradient histograms to TensorBoard loggers, as
    ``grad_hist/<parameter>``: TensorBoard keys a series by its tag and takes the kind of
    its first summary, so histograms under the norms' tags would be read as scalars.

    Args:
        every_n_steps: how often to measure (measuring costs a pass over all gradients).
        per_layer: also log one norm per parameter tensor.
        histograms: also log histograms (TensorBoard only).
    """

    def __init__(self, every_n_steps: int = 50, per_layer: bool = True, histograms: bool = False):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be at least 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.per_layer = per_layer
        self.histograms = histograms

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer
    ) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        grads = {n: p.grad.detach() for n, p in pl_module.named_parameters() if p.grad is not None}
        if not grads:
            return
        norms = {name: grad.norm(2) for name, grad in grads.items()}
        stats = {"grad/norm": torch.stack(list(norms.values())).norm(2)}
        if self.per_layer:
            stats.update({f"grad/{name}": norm for name, norm in norms.items()})
        # straight to the loggers: "every n steps" must not depend on log_every_n_steps
        values = {name: float(value) for name, value in stats.items()}
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)
        if self.histograms:
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    for name, grad in grads.items():
                        logger.experiment.add_histogram(
                            f"grad_hist/{name}", grad, trainer.global_step
                        )
