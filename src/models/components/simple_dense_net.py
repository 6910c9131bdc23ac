"""The lightning-hydra-template's MLP: three hidden layers with BatchNorm and ReLU."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from src.utils.errors import UserInputError


class SimpleDenseNet(nn.Module):
    """Flatten the input, then Linear-BatchNorm-ReLU three times and a linear output.

    Args:
        input_shape: shape of one sample (``${data_spec:input_shape}`` in the configs).
        num_classes: number of outputs (``${data_spec:num_classes}``).
        lin1_size, lin2_size, lin3_size: widths of the hidden layers.
        batch_norm: BatchNorm after each hidden linear layer (``False`` for
            per-sample gradients, as differential privacy needs).
        input_size, output_size: LHT's names, accepted instead of ``input_shape``
            (a flat size: 784 for MNIST) and ``num_classes``.
    """

    def __init__(
        self,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        lin1_size: int = 256,
        lin2_size: int = 256,
        lin3_size: int = 256,
        batch_norm: bool = True,
        *,
        input_size: int | None = None,
        output_size: int | None = None,
    ) -> None:
        super().__init__()
        input_shape = _one_of("input_shape", input_shape, "input_size", input_size)
        num_classes = _one_of("num_classes", num_classes, "output_size", output_size)
        if isinstance(input_shape, int):
            input_shape = [input_shape]
        sizes = [math.prod(input_shape), lin1_size, lin2_size, lin3_size]
        layers: list[nn.Module] = [nn.Flatten()]
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            norm = [nn.BatchNorm1d(n_out)] if batch_norm else []
            layers += [nn.Linear(n_in, n_out), *norm, nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _one_of(name: str, value: Any, lht_name: str, lht_value: Any) -> Any:
    """``value`` or LHT's ``lht_value`` for the same thing: exactly one of them."""
    if (value is None) == (lht_value is None):
        raise UserInputError(
            f"SimpleDenseNet takes {name} or LHT's {lht_name}, exactly one of them "
            f"(got {name}={value}, {lht_name}={lht_value})."
        )
    return value if value is not None else lht_value
