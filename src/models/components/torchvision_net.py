"""Any torchvision classification architecture as ``model.net`` (``model/net=torchvision``).

Built with ``weights=None`` (no hub downloads); pretrained weights come from a
local file (``weights_path``: a state dict of the same architecture, e.g. saved
with ``torch.save(model.state_dict(), path)`` on a machine that can download
them, or a checkpoint of this template). The output layer (the net's last
``nn.Linear``) is replaced by a fresh one for the data's classes, and the first
convolution by one for the data's channels (initialised from the RGB filters'
mean when weights are loaded).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from src.utils.errors import UserInputError


def last_linear(model: nn.Module) -> str:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise UserInputError(
            f"{type(model).__name__} has no nn.Linear output layer for this wrapper to replace "
            "(a classification architecture is needed: resnet18, efficientnet_b0, vit_b_16, ...)."
        )
    return names[-1]


def first_conv(model: nn.Module) -> str | None:
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def read_weights(path: Path, name: str) -> dict[str, Tensor]:
    """A state dict from ``path``: plain, or a template checkpoint (``net.model.`` keys)."""
    if not path.is_file():
        raise UserInputError(
            f"model.net.weights_path={path} does not exist. Give a local state-dict file of "
            f"{name} (torch.save(torchvision.models.{name}(weights=...).state_dict(), path)); "
            "nothing is downloaded here."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            saved: Any = load_file(str(path))
        else:
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file that is not weights
        raise UserInputError(
            f"model.net.weights_path={path} is not a weights file ({error})."
        ) from error
    if isinstance(saved, Mapping) and "state_dict" in saved:
        saved = {
            k.removeprefix("net.").removeprefix("model."): v
            for k, v in saved["state_dict"].items()
            if k.startswith("net.")
        }
    if not isinstance(saved, Mapping):
        raise UserInputError(f"model.net.weights_path={path} holds no state dict.")
    return dict(saved)


class TorchvisionNet(nn.Module):
    """``torchvision.models.get_model(name, weights=None)`` fitted to the data.

    Args:
        name: any name of ``torchvision.models.list_models()`` with a Linear output layer.
        input_shape: (channels, height, width) of a sample, from the data.
        num_classes: outputs of the new output layer, from the data.
        weights_path: a local state dict of ``name`` to start from; ``None``: random init.
        freeze_backbone: train the output layer only (frozen normalisation layers keep
            their running statistics).
        kwargs: more arguments of the architecture (e.g. ``image_size: 32`` for ViTs).
    """

    def __init__(
        self,
        name: str,
        input_shape: Sequence[int],
        num_classes: int,
        weights_path: str | None = None,
        freeze_backbone: bool = False,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from torchvision import models

        known = models.list_models(module=models)
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            raise UserInputError(
                f"model.net.name={name} is not a torchvision classification model. "
                f"Did you mean {close}? All: torchvision.models.list_models()."
            )
        model = models.get_model(name, weights=None, **dict(kwargs or {}))
        if weights_path is not None:
            self.load(model, Path(weights_path), name)
        channels = int(input_shape[0])
        conv = first_conv(model)
        if conv is not None and model.get_submodule(conv).in_channels != channels:
            old = model.get_submodule(conv)
            new = nn.Conv2d(channels, old.out_channels, old.kernel_size, old.stride,
                            old.padding, old.dilation, old.groups, old.bias is not None)  # fmt: skip
            if weights_path is not None:
                with torch.no_grad():
                    new.weight.copy_(old.weight.mean(dim=1, keepdim=True).expand_as(new.weight))
            replace(model, conv, new)
        self.head_name = last_linear(model)
        head = model.get_submodule(self.head_name)
        replace(model, self.head_name, nn.Linear(head.in_features, num_classes))
        self.model = model
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for pname, parameter in model.named_parameters():
                parameter.requires_grad = pname.startswith(f"{self.head_name}.")

    @staticmethod
    def load(model: nn.Module, path: Path, name: str) -> None:
        saved = read_weights(path, name)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(saved))
        unexpected = sorted(set(saved) - set(expected))
        wrong = [k for k in expected if k in saved and saved[k].shape != expected[k].shape]
        if missing or unexpected or wrong:
            raise UserInputError(
                f"model.net.weights_path={path} does not fit torchvision's {name}: "
                f"{len(missing)} of its tensors are missing (e.g. {missing[:2]}), "
                f"{len(unexpected)} are not {name}'s (e.g. {unexpected[:2]}), {len(wrong)} have "
                f"other shapes (e.g. {wrong[:2]}). It was saved from another architecture: set "
                "model.net.name to that one, or give weights of this one."
            )
        model.load_state_dict(saved)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def train(self, mode: bool = True) -> TorchvisionNet:
        super().train(mode)
        if self.freeze_backbone:
            for module in self.modules():
                if isinstance(module, _NormBase):
                    module.eval()
        return self
