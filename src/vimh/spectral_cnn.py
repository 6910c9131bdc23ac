"""A small CNN for spectrograms of any size, with one output per head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from src.models.components.heads import OutputHeads
from src.models.components.simple_cnn import conv_pool_blocks


class SpectralCNN(nn.Module):
    """Conv-BatchNorm-ReLU-MaxPool blocks, then ``OutputHeads`` (time pooling, levels).

    Args:
        input_shape: (channels, height, width) of one sample.
        heads: the head specs (``components.heads``).
        channels: output channels of each block; every block halves height and width.
        kernel_size: odd convolution kernel size (padding keeps the size).
        hidden_size: width of the hidden layer the heads share.
        dropout: dropout before the output layers.
        head_losses: the model's ``head_losses`` (``components.heads.OutputHeads``).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        heads: Sequence[dict[str, Any]],
        channels: Sequence[int] = (16, 32, 64),
        kernel_size: int = 3,
        hidden_size: int = 64,
        dropout: float = 0.1,
        head_losses: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.features, (out_channels, height, _) = conv_pool_blocks(
            input_shape, channels, kernel_size, type(self).__name__
        )
        self.heads = OutputHeads(out_channels, height, heads, hidden_size, dropout, head_losses)

    def forward(self, x: Tensor, levels: Tensor) -> dict[str, Tensor]:
        return self.heads(self.features(x), levels)
