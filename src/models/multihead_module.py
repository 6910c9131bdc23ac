"""Multihead learning: one output per labelled parameter, each of its own kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from src.models.base_module import BaseLitModule
from src.models.components.head_kinds import kind_of
from src.models.components.head_losses import assign_losses, loss_of
from src.models.components.head_metrics import HeadMetrics
from src.models.components.head_specs import label_classes
from src.utils.errors import UserInputError

Outputs = dict[str, Tensor]


def _plain(mapping: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Hydra's containers as plain dicts and strings (checkpoints hold plain data only)."""
    if mapping is None:
        return None
    return {
        str(k): {str(o): p for o, p in v.items()} if isinstance(v, Mapping) else v
        for k, v in dict(mapping).items()
    }


class MultiheadModule(BaseLitModule):
    """Learns every head of a VIMH batch ``(x, y, levels)`` at once.

    The net maps ``(x, levels)`` to ``{head name: output}`` (see
    ``components.heads``). The loss is the sum over heads of ``loss_weights``
    times each head's loss (``components.head_losses``, chosen per head or per
    kind by ``head_losses``: by default L1 on the normalised range for
    regression, cross-entropy for classification, the expected-class distance
    for ordinal heads). Logs ``{stage}/loss``,
    ``{stage}/<head>/acc`` or ``/mae`` (parameter units), ``{stage}/score``
    and ``val/score_best`` (``components.head_metrics``).

    Args:
        net: maps ``(x, levels)`` to one output per head, built from ``heads``.
        heads: the head specs (filled from the data when ``???``).
        optimizer, scheduler, compile, scheduler_monitor, monitor, mode: see
            ``BaseLitModule`` (the model config sets monitor and mode).
        loss_weights: head name -> weight of its loss; heads not named weigh 1.
        ordinal_ce: weight of the cross-entropy term in an ordinal head's ``distance``
            loss (unless its ``head_losses`` entry sets ``ce_weight``).
        head_losses: head name or kind -> loss name or ``{name: <loss>, <option>: <value>}``
            (``components.head_losses``); the net must be built with the same mapping.
    """

    def __init__(
        self,
        net: nn.Module,
        heads: Sequence[Mapping[str, Any]],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_weights: Mapping[str, float] | None = None,
        ordinal_ce: float = 0.1,
        head_losses: Mapping[str, Any] | None = None,
        compile: bool = False,
        scheduler_monitor: str = "val/loss",
        monitor: str = "val/score",
        mode: str = "max",
    ) -> None:
        # plain data, not Hydra's containers: save_hyperparameters stores these very
        # locals, and a checkpoint must load with torch.load(weights_only=True)
        heads = [dict(head) for head in heads]
        loss_weights = {str(name): float(w) for name, w in (loss_weights or {}).items()}
        head_losses = _plain(head_losses)
        unknown = sorted(set(loss_weights) - {head["name"] for head in heads})
        if unknown:
            raise UserInputError(
                f"model.loss_weights names {unknown}, which are not heads of this data: "
                f"{[head['name'] for head in heads]}."
            )
        self.heads = assign_losses(heads, head_losses, ordinal_ce)
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
        loss = 0.0
        for i, (head, weight) in enumerate(zip(self.heads, self.weights, strict=True)):
            output, head_loss = outputs[head["name"]], loss_of(head)
            if output.shape[1] != head_loss.output_size(head):
                raise UserInputError(
                    f"The net's {head['name']} output has {output.shape[1]} columns; its "
                    f"{head['loss']['name']} loss needs {head_loss.output_size(head)}. Build "
                    "the net with the model's head_losses (net.head_losses: ${..head_losses})."
                )
            loss = loss + weight * head_loss(head, output, y[:, i])
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
