"""The output end every multihead net shares: feature maps and levels in, one output per head.

A head spec is the plain dict of ``src.models.components.head_specs`` (``name``,
``kind``, ``num_classes``, ``min``, ``max``, ``step``); the data module's
``spec["heads"]`` fills a model config's ``heads: ???``. Each head gets its own
output layer, sized by its kind, when the net is built: nothing is patched
afterwards.

Why the feature maps are pooled over time only: in a spectrogram, pitch is a
position on the frequency axis (rows), while the notes' time course matters
less than where their energy lies. Averaging each row of the last feature map
over time keeps that position and makes the net indifferent to the image's
width.

Why the levels join here: each VIMH image is normalised on its own, so its
loudness lives only in ``levels`` (standardised ``spec_min_db``,
``spec_max_db``). Concatenated to the pooled features before the shared hidden
layer, they make loudness-type parameters (``note_velocity``) learnable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from src.models.components.head_kinds import kind_of
from src.models.components.head_losses import assign_losses

#: the columns of a VIMH batch's ``levels``: spec_min_db and spec_max_db
NUM_LEVELS = 2


class OutputHeads(nn.Module):
    """Time-pooled feature maps + levels -> shared hidden layer -> one linear layer per head.

    Args:
        channels: channels of the feature map the net hands over.
        height: its height (frequency rows) after the net's downsampling.
        heads: the head specs, in label-column order.
        hidden_size: width of the hidden layer the heads share.
        dropout: dropout after the hidden layer.
        head_losses: the model's ``head_losses`` (``components.head_losses``): a loss
            may bring its own output layer (``coral``).
    """

    def __init__(
        self,
        channels: int,
        height: int,
        heads: Sequence[dict[str, Any]],
        hidden_size: int = 64,
        dropout: float = 0.1,
        head_losses: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        names = [str(head["name"]) for head in heads]
        if not names or len(set(names)) != len(names) or any("." in n for n in names):
            raise ValueError(
                f"model.net.heads needs one or more heads with distinct names without '.', "
                f"got {names}."
            )
        self.hidden = nn.Sequential(
            nn.Linear(channels * height + NUM_LEVELS, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        heads = assign_losses(heads, head_losses)
        self.outputs = nn.ModuleDict(
            {
                name: kind_of(h).output_layer(hidden_size, h)
                for name, h in zip(names, heads, strict=True)
            }
        )

    def forward(self, features: Tensor, levels: Tensor) -> dict[str, Tensor]:
        """Feature maps (N, C, H, W) and levels (N, 2) -> {head name: (N, outputs)}."""
        pooled = features.mean(dim=3).flatten(1)
        hidden = self.hidden(torch.cat([pooled, levels], dim=1))
        return {name: layer(hidden) for name, layer in self.outputs.items()}
