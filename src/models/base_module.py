"""What every LightningModule of the template shares.

A task module (classification, regression, multihead, LoRA) subclasses
``BaseLitModule`` and provides only what differs between tasks:

- ``model_step(batch) -> (loss, outputs, targets)``: ``outputs`` a tensor or
  a dict of tensors (one per head), ``targets`` a tensor with one row per sample;
- ``make_metrics() -> MetricCollection`` (cloned per stage as ``train/``,
  ``val/`` and ``test/``), updated with ``(outputs, targets)`` in
  ``update_metrics``;
- a default ``monitor`` (the validation metric that selects checkpoints, tracked
  as ``<monitor>_best``) and ``mode`` for its constructor; the model config states
  both (``model.monitor``, ``model.mode``) and the checkpoint and early-stopping
  callbacks and ``optimized_metric`` interpolate them.

Everything else lives here once: the optimizer and scheduler from Hydra
partials, optional ``torch.compile``, logging, the best-so-far tracking that
ignores Lightning's sanity check, and the random generators' state saved in
and restored from checkpoints (so a resumed run continues exactly).

Checkpoints hold tensors and plain data only: the net, optimizer, scheduler
and criterion are not pickled into the hyperparameters, and a checkpoint
loads with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from lightning import LightningModule
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor, nn
from torchmetrics import MaxMetric, Metric, MetricCollection, MinMetric

from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger
from src.utils.rng import rng_states, set_rng_states

log = RankedLogger(__name__)


@contextmanager
def _persistent(metrics: MetricCollection) -> Iterator[None]:
    """Metric states in the collection's ``state_dict`` for a while (every metric, also
    those inside wrappers, whose own ``persistent`` does not reach them)."""
    inner = [m for m in metrics.modules() if isinstance(m, Metric)]
    for metric in inner:
        metric.persistent(True)
    try:
        yield
    finally:
        for metric in inner:
            metric.persistent(False)


def update_each(metrics: MetricCollection, *args: Any) -> None:
    """``metrics.update(*args)`` without the collection's own work at every call
    (keyword filtering, compute-group bookkeeping: ~35 us on the build machines, as much
    as updating a count itself, and the training step updates every batch). Each metric
    keeps states of its own; ``compute`` and ``reset`` on the collection are unchanged.
    ``ModuleDict.values``: the collection's own ``values`` first links the states of
    metrics in a compute group (an attribute set even when there is none to link)."""
    for metric in nn.ModuleDict.values(metrics):
        metric.update(*args)


class _LossSum:
    """A stage's sum of loss x samples (a tensor on the module's device, one in-place op
    per step) and its sample count (a Python int: no tensor op at all)."""

    __slots__ = ("total", "samples")

    def __init__(self, total: Tensor, samples: int = 0) -> None:
        self.total, self.samples = total, samples

    def add(self, loss: Tensor, samples: int) -> None:
        self.total.add_(loss.detach(), alpha=samples)
        self.samples += samples

    def state(self) -> dict[str, Any]:
        """For a checkpoint: plain data and a CPU tensor."""
        return {"total": self.total.detach().cpu(), "samples": self.samples}

    @classmethod
    def from_state(cls, state: dict[str, Any] | Tensor, device: torch.device) -> _LossSum:
        if isinstance(state, Tensor):  # written before 2026-12: one (sum, samples) tensor
            return cls(state[0].clone().to(device), int(state[1]))
        return cls(state["total"].clone().to(device), int(state["samples"]))


class _LossTotals(dict):
    """Per stage: a ``_LossSum``, made on first use in an epoch and dropped when the
    epoch's loss is logged."""

    def __init__(self, module: LightningModule) -> None:
        super().__init__()
        self.module = module

    def __missing__(self, stage: str) -> _LossSum:
        self[stage] = _LossSum(torch.zeros((), device=self.module.device))
        return self[stage]


class BaseLitModule(LightningModule):
    """Shared training machinery; see the module docstring for the subclass contract.

    Args:
        net: the network (an ``nn.Module``, instantiated by Hydra).
        optimizer: a partial optimizer (``_partial_: true``) taking ``params``.
        scheduler: an optional partial LR scheduler taking ``optimizer``.
        criterion: the loss module.
        compile: compile the net with ``torch.compile`` before fitting.
        scheduler_monitor: the metric a ``ReduceLROnPlateau``-type scheduler watches.
        monitor: the validation metric that selects checkpoints (``val/acc``),
            logged also as its best so far (``val/acc_best``).
        mode: ``max`` when higher ``monitor`` values are better, ``min`` otherwise.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        criterion: nn.Module | None = None,
        compile: bool = False,
        scheduler_monitor: str = "val/loss",
        monitor: str = "val/loss",
        mode: str = "min",
    ) -> None:
        super().__init__()
        if not str(monitor).startswith("val/") or mode not in ("max", "min"):
            raise UserInputError(
                f"model.monitor={monitor} model.mode={mode}: the monitor must be a validation "
                "metric (val/<name>, for example val/acc) and the mode max or min."
            )
        # plain values only: modules and partials would be pickled into checkpoints
        self.save_hyperparameters(
            logger=False, ignore=["net", "optimizer", "scheduler", "criterion"]
        )
        self.net = net
        self.criterion = criterion
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        metrics = self.make_metrics()
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # by stage, for the step: a submodule attribute is looked up through nn.Module's
        # __getattr__ (~5 us inside a fit), a plain dict in the instance's own
        self._stage_metrics = {
            "train": self.train_metrics,
            "val": self.val_metrics,
            "test": self.test_metrics,
        }
        self.val_best: Metric = MaxMetric() if mode == "max" else MinMetric()
        self.val_best.persistent(True)  # the best-so-far survives a resume
        self._loss_totals: dict[str, _LossSum] = _LossTotals(self)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name (a str or None) before and after every hook it
        # calls, ~30 times a training step; nn.Module.__setattr__ looks for parameters,
        # buffers and submodules first (~5 us), then does this plain assignment (~0.4 us)
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # -- what a task module provides ----------------------------------------------------

    def make_metrics(self) -> MetricCollection:
        raise NotImplementedError

    def model_step(self, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def update_metrics(self, metrics: MetricCollection, outputs: Tensor, targets: Tensor) -> None:
        update_each(metrics, outputs, targets)

    # -- shared ----------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def net_inputs(self, batch: Any) -> tuple[Tensor, ...]:
        """The net's positional inputs within a batch (for export and summaries)."""
        return (batch[0],)

    def _shared_step(self, batch: Any, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        loss, outputs, targets = self.model_step(batch)
        metrics = self._stage_metrics[stage]
        # outputs: one tensor or a collection of them (one per head)
        if isinstance(outputs, Tensor):
            detached = outputs.detach()
        else:
            detached = apply_to_collection(outputs, Tensor, Tensor.detach)
        self.update_metrics(metrics, detached, targets)
        # a running sum instead of a self.log call per step: Lightning's per-call
        # bookkeeping costs about as much as a small model's whole step
        self._loss_totals[stage].add(loss, len(targets))
        return loss, outputs, targets

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")[0]

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        # returned for callbacks (confusion matrix, sample grid): Lightning keeps nothing
        loss, outputs, targets = self._shared_step(batch, "val")
        return {"loss": loss, "outputs": outputs, "targets": targets}

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        loss, outputs, targets = self._shared_step(batch, "test")
        return {"loss": loss, "outputs": outputs, "targets": targets}

    def class_predictions(
        self, outputs: Any, targets: Any
    ) -> dict[str, tuple[Tensor, Tensor, int]]:
        """Per classification head: (predicted classes, true classes, number of classes).

        Used by the confusion-matrix and sample-grid callbacks; empty for tasks
        without classes. The key names the head ("" for a single-label task).
        """
        return {}

    def _log_epoch_metrics(self, stage: str) -> dict[str, Tensor]:
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        values = metrics.compute()
        totals = self._loss_totals.pop(stage, None)
        if totals is not None and totals.samples > 0:
            # every process ran equally many, equally large batches: the mean of the
            # processes' means (sync_dist) is the mean over all samples
            loss = totals.total / totals.samples
            self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True)
        # torchmetrics has synced its states already: the reduction changes nothing. On the
        # bar as in LHT: train/acc is what debug=overfit tells you to read
        self.log_dict(values, prog_bar=True, sync_dist=True)
        metrics.reset()
        if totals is not None and totals.samples > 0:
            values[f"{stage}/loss"] = loss  # this process's mean: enough to track a best
        return values

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch_metrics("val")
        monitor = self.hparams.monitor
        if monitor not in values:  # checked in the sanity check already: before any training
            raise UserInputError(
                f"model.monitor={monitor} is not a validation metric of "
                f"{type(self).__name__}; it logs {sorted(values)}. Set model.monitor to one "
                "of them (the callbacks and optimized_metric follow it)."
            )
        if self.trainer.sanity_checking:
            return  # the sanity check's untrained model must not count as a best
        self.val_best.update(values[monitor])
        self.log(f"{monitor}_best", self.val_best.compute(), prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def setup(self, stage: str) -> None:
        if self.hparams.compile and stage == "fit":
            self.net.compile()  # in place: parameter names (and checkpoints) stay the same

    def _make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """The configured optimizer; a fused one (the optimizer configs' default) unless
        the trainer clips gradients under mixed precision: a fused step would unscale
        the gradients itself, so Lightning's AMP plugin refuses to clip them first
        (bf16 included, though it has nothing to unscale)."""
        from lightning.pytorch.plugins.precision import MixedPrecision

        factory = self.optimizer_factory
        trainer = self._trainer
        if getattr(factory, "keywords", {}).get("fused") and trainer is not None:
            if trainer.gradient_clip_val and isinstance(trainer.precision_plugin, MixedPrecision):
                log.info("mixed precision with gradient clipping: the optimizer runs unfused")
                return factory(params=params, fused=False)
        return factory(params=params)

    def configure_optimizers(self) -> Any:
        from src.models.components.schedulers import interval_of

        optimizer = self._make_optimizer([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        # a @per_step schedule (warmup_cosine, onecycle, linear_warmup) is stepped every
        # optimizer step over the trainer's estimate of them; any other scheduler per epoch
        interval = interval_of(self.scheduler_factory)
        if interval == "step":
            total_steps = self.trainer.estimated_stepping_batches
            scheduler = self.scheduler_factory(optimizer=optimizer, total_steps=total_steps)
        else:
            scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.hparams.scheduler_monitor,
                "interval": interval,
                "frequency": self._epochs_between_steps(scheduler, interval),
            },
        }

    def _epochs_between_steps(self, scheduler: Any, interval: str) -> int:
        """1, or for ``ReduceLROnPlateau`` under ``trainer.check_val_every_n_epoch=N``, N: it
        watches a validation metric, which the epochs between validations lack (Lightning
        stopped the run there: "conditioned on metric val/loss which is not available")."""
        from torch.optim.lr_scheduler import ReduceLROnPlateau

        every = getattr(self._trainer, "check_val_every_n_epoch", None)
        if interval == "epoch" and isinstance(scheduler, ReduceLROnPlateau) and every:
            return int(every)
        return 1

    def on_train_epoch_start(self) -> None:
        # a new epoch starts from nothing (not a run resumed mid-epoch: Lightning does not
        # call this hook then, and the restored partial sums below carry on)
        self.train_metrics.reset()
        self._loss_totals.pop("train", None)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = rng_states()
        # the training epoch's partial metric states and loss sum: a run stopped mid-epoch
        # and resumed reports that epoch's metrics over all its batches
        with _persistent(self.train_metrics):
            metric_states = self.train_metrics.state_dict()
        loss = self._loss_totals.get("train")
        checkpoint["train_epoch_sums"] = {
            "metrics": dict(metric_states),
            "loss": None if loss is None else loss.state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
        sums = checkpoint.get("train_epoch_sums")
        if sums:
            with _persistent(self.train_metrics):
                self.train_metrics.load_state_dict(sums["metrics"], strict=False)
            self.train_metrics.to(self.device)
            if sums["loss"] is not None:
                self._loss_totals["train"] = _LossSum.from_state(sums["loss"], self.device)
