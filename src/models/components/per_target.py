"""One regression metric for each target, and its mean over the targets."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor
from torchmetrics import Metric
from torchmetrics.wrappers.abstract import WrapperMetric


class PerTarget(WrapperMetric):
    """Wraps a metric that returns one value per target (``num_outputs`` or
    ``multioutput="raw_values"``) and names each value.

    ``compute`` returns ``{name: mean over targets, "<target>/<name>": value, ...}``;
    a ``MetricCollection`` flattens that dict into its own, prefix included
    (``val/mae``, ``val/price/mae``). The wrapped metric keeps the state and
    does the syncing across processes.

    Args:
        metric: the per-target metric.
        name: the metric's name.
        target_names: one name per target, in column order.
    """

    def __init__(self, metric: Metric, name: str, target_names: Sequence[str]) -> None:
        super().__init__()
        self.metric = metric
        self.name = name
        self.target_names = list(target_names)

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.metric.update(preds, target)

    def compute(self) -> dict[str, Tensor]:
        values = self.metric.compute().reshape(-1)
        per_target = {
            f"{target}/{self.name}": value
            for target, value in zip(self.target_names, values, strict=True)
        }
        return {self.name: values.mean(), **per_target}

    def reset(self) -> None:
        self.metric.reset()
        super().reset()
