"""The lightning-hydra-template's MLP: three hidden layers with BatchNorm and ReLU."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn


class SimpleDenseNet(nn.Module):
    """Flatten the input, then Linear-BatchNorm-ReLU three times and a linear output.

    Args:
        input_shape: shape of one sample (filled from the data when ``???``).
        num_classes: number of outputs (filled from the data when ``???``).
        lin1_size, lin2_size, lin3_size: widths of the hidden layers.
        batch_norm: BatchNorm after each hidden linear layer (``False`` for
            per-sample gradients, as differential privacy needs).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        lin1_size: int = 256,
        lin2_size: int = 256,
        lin3_size: int = 256,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        sizes = [math.prod(input_shape), lin1_size, lin2_size, lin3_size]
        layers: list[nn.Module] = [nn.Flatten()]
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            norm = [nn.BatchNorm1d(n_out)] if batch_norm else []
            layers += [nn.Linear(n_in, n_out), *norm, nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
