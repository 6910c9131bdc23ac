"""Multihead learning: one output per labelled parameter, each of its own kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from src.models.base_module import BaseLitModule
from src.models.components.head_kinds import kind_of
from src.models.components.head_metrics import HeadMetrics
from src.models.components.head_specs import label_classes

Outputs = dict[str, Tensor]


class MultiheadModule(BaseLitModule):
    """Learns every head of a VIMH batch ``(x, y, levels)`` at once.

    The net maps ``(x, levels)`` to ``{head name: output}`` (see
    ``components.heads``). The loss is the sum over heads of ``loss_weights``
    times each head's loss (``components.head_kinds``: cross-entropy,
    ordinal or normalised regression). Logs ``{stage}/loss``,
    ``{stage}/<head>/acc`` or ``/mae`` (parameter units), ``{stage}/score``
    and ``val/score_best`` (``components.head_metrics``).

    Args:
        net: maps ``(x, levels)`` to one output per head, built from ``heads``.
        heads: the head specs (filled from the data when ``???``).
        optimizer, scheduler, compile, scheduler_monitor, monitor, mode: see
            ``BaseLitModule`` (the model config sets monitor and mode).
        loss_weights: head name -> weight of its loss; heads not named weigh 1.
        ordinal_ce: weight of the cross-entropy term in an ordinal head's loss.
    """

    def __init__(
        self,
        net: nn.Module,
        heads: Sequence[Mapping[str, Any]],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_weights: Mapping[str, float] | None = None,
        ordinal_ce: float = 0.1,
        compile: bool = False,
        scheduler_monitor: str = "val/loss",
        monitor: str = "val/score",
        mode: str = "max",
    ) -> None:
        # plain data, not Hydra's containers: save_hyperparameters stores these very
        # locals, and a checkpoint must load with torch.load(weights_only=True)
        heads = [dict(head) for head in heads]
        loss_weights = {str(name): float(w) for name, w in (loss_weights or {}).items()}
        unknown = sorted(set(loss_weights) - {head["name"] for head in heads})
        if unknown:
            raise ValueError(
                f"model.loss_weights names {unknown}, which are not heads of this data: "
                f"{[head['name'] for head in heads]}."
            )
        self.heads = heads
        self.weights = [loss_weights.get(head["name"], 1.0) for head in heads]
        super().__init__(net, optimizer, scheduler, None, compile, scheduler_monitor, monitor, mode)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"heads": HeadMetrics(self.heads)}, compute_groups=False)

    def forward(self, x: Tensor, levels: Tensor) -> Outputs:
        return self.net(x, levels)

    def net_inputs(self, batch: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x, _, levels = batch
        return x, levels

    def model_step(self, batch: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Outputs, Tensor]:
        y = batch[1]
        outputs = self.net(*self.net_inputs(batch))
        loss = sum(
            weight
            * kind_of(head).loss(head, outputs[head["name"]], y[:, i], self.hparams.ordinal_ce)
            for i, (head, weight) in enumerate(zip(self.heads, self.weights, strict=True))
        )
        return loss, outputs, y

    def class_predictions(
        self, outputs: Outputs, targets: Tensor
    ) -> dict[str, tuple[Tensor, Tensor, int]]:
        return {
            head["name"]: (
                kind_of(head).predicted_classes(head, outputs[head["name"]]),
                label_classes(targets[:, i], head),
                head["num_classes"],
            )
            for i, head in enumerate(self.heads)
            if kind_of(head).predicts_classes
        }
