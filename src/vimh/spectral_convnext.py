"""A small ConvNeXt-style net for spectrograms of any size, with one output per head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from src.models.components.heads import OutputHeads


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) map."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, LayerNorm, pointwise MLP (4x), layer scale, residual.

    Args:
        dim: channels.
        layer_scale: initial scale of the residual branch. ConvNeXt uses 1e-6
            for deep nets trained for long; our nets are shallow and trained for
            a few epochs, where a larger start learns faster.
    """

    def __init__(self, dim: int, layer_scale: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.scale = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        branch = self.mlp(self.norm(self.depthwise(x).permute(0, 2, 3, 1))) * self.scale
        return x + branch.permute(0, 3, 1, 2)


class SpectralConvNeXt(nn.Module):
    """A 2x2 patchify stem, stages of ConvNeXt blocks with 2x2 downsampling between
    them, then ``OutputHeads`` (time pooling, levels).

    Args:
        input_shape: (channels, height, width) of one sample.
        heads: the head specs (``components.heads``).
        dims: channels of each stage.
        depths: blocks in each stage.
        layer_scale: initial scale of each block's residual branch.
        hidden_size: width of the hidden layer the output heads share.
        dropout: dropout before the output layers.
        head_losses: the model's ``head_losses`` (``components.heads.OutputHeads``).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        heads: Sequence[dict[str, Any]],
        dims: Sequence[int] = (32, 64),
        depths: Sequence[int] = (2, 2),
        layer_scale: float = 0.1,
        hidden_size: int = 64,
        dropout: float = 0.1,
        head_losses: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        channels, height, width = (int(n) for n in input_shape)
        if len(dims) != len(depths):
            raise ValueError(
                f"model.net.dims {list(dims)} and depths {list(depths)} differ in length."
            )
        shrink = 2 ** len(dims)
        if height < shrink or width < shrink:
            raise ValueError(
                f"SpectralConvNeXt with {len(dims)} stages needs inputs of at least "
                f"{shrink}x{shrink}, got {height}x{width}: use fewer model.net.dims."
            )
        layers: list[nn.Module] = []
        in_dim = channels
        for stage, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            down = nn.Conv2d(in_dim, dim, 2, stride=2)
            layers += [down, LayerNorm2d(dim)] if stage == 0 else [LayerNorm2d(in_dim), down]
            layers += [ConvNeXtBlock(dim, layer_scale) for _ in range(depth)]
            in_dim = dim
        self.features = nn.Sequential(*layers, LayerNorm2d(in_dim))
        self.heads = OutputHeads(in_dim, height // shrink, heads, hidden_size, dropout, head_losses)

    def forward(self, x: Tensor, levels: Tensor) -> dict[str, Tensor]:
        return self.heads(self.features(x), levels)
