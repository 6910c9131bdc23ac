"""A 1-D residual CNN for sequences: depth is a setting, not a new class."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from src.utils.errors import UserInputError


class ResidualBlock1D(nn.Module):
    """conv-BN-ReLU-conv-BN added to the block's input, then ReLU.

    A block with ``stride=2`` halves the length; its skip path is then a
    strided 1x1 convolution. The last BatchNorm starts at zero, so every
    block starts as the identity and a deep stack trains from the first step.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, kernel_size, stride, pad, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size, 1, pad, bias=False),
            nn.BatchNorm1d(channels),
        )
        nn.init.zeros_(self.body[-1].weight)
        self.skip: nn.Module = nn.Identity()
        if stride != 1:
            self.skip = nn.Sequential(
                nn.Conv1d(channels, channels, 1, stride, bias=False), nn.BatchNorm1d(channels)
            )
        self.activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.body(x) + self.skip(x))


class ResidualCNN1D(nn.Module):
    """A convolutional stem, ``num_blocks`` residual blocks, global average pooling
    and a linear output.

    Args:
        input_shape: (channels, length) of one sample.
        num_targets: number of outputs.
        channels: width of every block.
        num_blocks: number of residual blocks (10 or more train fine).
        kernel_size: odd kernel size of every convolution.
        downsample_every: every n-th block halves the length (0: none does),
            which widens the receptive field at little cost.
        dropout: dropout before the output layer.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_targets: int,
        channels: int = 32,
        num_blocks: int = 6,
        kernel_size: int = 5,
        downsample_every: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(input_shape) != 2:
            raise UserInputError(
                f"ResidualCNN1D takes sequences of shape (channels, length); the data give "
                f"samples of shape {tuple(input_shape)}. Use it with sequence data (data=signals), "
                "or a model made for this data (model=regression_mlp for table rows)."
            )
        in_channels, length = (int(n) for n in input_shape)
        if kernel_size % 2 == 0:
            raise UserInputError(
                f"model.net.kernel_size must be odd to keep the length, got {kernel_size}."
            )
        strides = [
            2 if downsample_every and (i + 1) % downsample_every == 0 else 1
            for i in range(num_blocks)
        ]
        if length < 2 ** strides.count(2):
            raise UserInputError(
                f"ResidualCNN1D halves the length {strides.count(2)} times, which needs "
                f"sequences of at least {2 ** strides.count(2)} samples, got {length}: "
                "raise model.net.downsample_every or use fewer blocks."
            )
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(
            *(ResidualBlock1D(channels, kernel_size, stride) for stride in strides)
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels, num_targets),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))
