"""A small convolutional net for images of any size (square or not)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def conv_pool_blocks(
    input_shape: Sequence[int], channels: Sequence[int], kernel_size: int, owner: str
) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """Conv-BatchNorm-ReLU-MaxPool blocks, one per entry of ``channels``.

    Returns the blocks and the (channels, height, width) they output; every block
    halves height and width. ``owner`` names the net in the error for too small inputs.
    """
    in_channels, height, width = (int(n) for n in input_shape)
    shrink = 2 ** len(channels)
    if height < shrink or width < shrink:
        raise ValueError(
            f"{owner} with {len(channels)} pooling blocks needs inputs of at least "
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
    return nn.Sequential(*blocks), (in_channels, height // shrink, width // shrink)


class SimpleCNN(nn.Module):
    """Conv-BatchNorm-ReLU-MaxPool blocks, then a hidden linear layer and the output.

    Args:
        input_shape: (channels, height, width) of one sample.
        num_classes: number of outputs.
        channels: output channels of each convolutional block; every block
            halves height and width.
        kernel_size: odd convolution kernel size (padding keeps the size).
        hidden_size: width of the hidden linear layer.
        dropout: dropout before the output layer.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        hidden_size: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.features, (out_channels, height, width) = conv_pool_blocks(
            input_shape, channels, kernel_size, type(self).__name__
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(out_channels * height * width, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
