"""A small vision transformer for spectrograms of any size, with one output per head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from src.models.components.heads import OutputHeads


class SpectralViT(nn.Module):
    """Patches -> learnt position embeddings -> pre-norm transformer -> ``OutputHeads``.

    The tokens stay on their (frequency, time) grid: after the encoder they are
    laid out as a feature map again, so the heads pool over time and keep
    frequency as the other nets do. Patches need not be square, and the image
    need not be either; its sides must be multiples of the patch's.

    Args:
        input_shape: (channels, height, width) of one sample.
        heads: the head specs (``components.heads``).
        patch_size: (height, width) of a patch.
        dim: token width.
        depth: transformer layers.
        num_heads: attention heads per layer (``dim`` must divide by it).
        mlp_ratio: width of each layer's MLP as a multiple of ``dim``.
        hidden_size: width of the hidden layer the output heads share.
        dropout: dropout in the transformer and before the output layers.
        head_losses: the model's ``head_losses`` (``components.heads.OutputHeads``).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        heads: Sequence[dict[str, Any]],
        patch_size: Sequence[int] = (4, 4),
        dim: int = 64,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: int = 2,
        hidden_size: int = 64,
        dropout: float = 0.1,
        head_losses: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        channels, height, width = (int(n) for n in input_shape)
        patch_h, patch_w = (int(n) for n in patch_size)
        if height % patch_h or width % patch_w:
            raise ValueError(
                f"SpectralViT: a {height}x{width} input does not divide into {patch_h}x{patch_w} "
                "patches; choose a model.net.patch_size whose sides divide the input's."
            )
        self.grid = (height // patch_h, width // patch_w)
        self.embed = nn.Conv2d(channels, dim, (patch_h, patch_w), stride=(patch_h, patch_w))
        self.position = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            num_heads,
            mlp_ratio * dim,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.heads = OutputHeads(dim, self.grid[0], heads, hidden_size, dropout, head_losses)

    def forward(self, x: Tensor, levels: Tensor) -> dict[str, Tensor]:
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position
        tokens = self.norm(self.encoder(tokens))
        features = tokens.transpose(1, 2).unflatten(2, self.grid)
        return self.heads(features, levels)
