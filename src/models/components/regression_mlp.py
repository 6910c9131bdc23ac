"""A multilayer perceptron for tabular regression."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn


class RegressionMLP(nn.Module):
    """Flatten, then Linear-(BatchNorm)-ReLU-Dropout per hidden layer, and a linear output.

    Args:
        input_shape: shape of one sample (filled from the data when ``???``).
        num_targets: number of outputs (filled from the data when ``???``).
        hidden_sizes: width of each hidden layer; ``[]`` is a linear model.
        dropout: dropout after each hidden layer.
        batch_norm: BatchNorm after each hidden linear layer.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_targets: int,
        hidden_sizes: Sequence[int] = (64, 64),
        dropout: float = 0.1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers += [nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_targets))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
