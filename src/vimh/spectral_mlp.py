"""A dense net for spectrograms, with one output per head: NSMT's SimpleDenseNet quick runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from src.models.components.heads import OutputHeads


class SpectralMLP(nn.Module):
    """The whole image flattened, Linear-BatchNorm-ReLU layers, then ``OutputHeads``.

    Unlike the convolutional nets it has no notion of where a frequency lies: a
    baseline, and the fastest net to train.

    Args:
        input_shape: (channels, height, width) of one sample.
        heads: the head specs (``src.models.components.heads``).
        hidden_sizes: widths of the dense layers.
        hidden_size: width of the hidden layer the heads share (levels join there).
        dropout: dropout before the output layers.
        head_losses: the model's ``head_losses`` (``components.heads.OutputHeads``).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        heads: Sequence[dict[str, Any]],
        hidden_sizes: Sequence[int] = (128, 64),
        hidden_size: int = 64,
        dropout: float = 0.1,
        head_losses: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU()]
            width = size
        self.features = nn.Sequential(*layers)
        self.heads = OutputHeads(width, 1, heads, hidden_size, dropout, head_losses)

    def forward(self, x: Tensor, levels: Tensor) -> dict[str, Tensor]:
        # a (N, width, 1, 1) "feature map": the heads' time pooling leaves it as it is
        return self.heads(self.features(x)[:, :, None, None], levels)
