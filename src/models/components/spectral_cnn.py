"""A small CNN for spectrograms of any size, with one output per head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from src.models.components.heads import OutputHeads


class SpectralCNN(nn.Module):
    """Conv-BatchNorm-ReLU-MaxPool blocks, then ``OutputHeads`` (time pooling, levels).

    Args:
        input_shape: (channels, height, width) of one sample.
        heads: the head specs (``components.heads``).
        channels: output channels of each block; every block halves height and width.
        kernel_size: odd convolution kernel size (padding keeps the size).
        hidden_size: width of the hidden layer the heads share.
        dropout: dropout before the output layers.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        heads: Sequence[dict[str, Any]],
        channels: Sequence[int] = (16, 32, 64),
        kernel_size: int = 3,
        hidden_size: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        in_channels, height, width = (int(n) for n in input_shape)
        shrink = 2 ** len(channels)
        if height < shrink or width < shrink:
            raise ValueError(
                f"SpectralCNN with {len(channels)} pooling blocks needs inputs of at least "
                f"{shrink}x{shrink}, got {height}x{width}: use fewer model.net.channels."
            )
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks += [
                nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.heads = OutputHeads(in_channels, height // shrink, heads, hidden_size, dropout)

    def forward(self, x: Tensor, levels: Tensor) -> dict[str, Tensor]:
        return self.heads(self.features(x), levels)
