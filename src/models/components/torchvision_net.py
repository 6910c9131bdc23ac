"""Any torchvision classification architecture as ``model.net`` (``model/net=torchvision``).

Built with ``weights=None`` (no hub downloads); pretrained weights come from a
local file (``weights_path``: a state dict of the same architecture, e.g. saved
with ``torch.save(model.state_dict(), path)`` on a machine that can download
them, or a checkpoint of this template, whatever channels and classes it was fitted
to: full fine-tuning of a trained run). The output layer (the net's last
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


def fits(key: str, saved: Tensor, expected: Tensor, flexible: set[str]) -> bool:
    """Whether a saved tensor can take the place of ``expected``: the same shape, or, for the
    first convolution's weight and the output layer, the same shape but for the dimension
    the data decide (input channels, classes)."""
    if saved.shape == expected.shape:
        return True
    if key not in flexible or saved.ndim != expected.ndim:
        return False
    free = 1 if saved.ndim == 4 else 0  # conv weight: (out, in, kh, kw); head: (classes, ...)
    return all(
        a == b
        for i, (a, b) in enumerate(zip(saved.shape, expected.shape, strict=True))
        if i != free
    )


def fit_first_conv(new: nn.Conv2d, saved: Mapping[str, Tensor], name: str) -> None:
    """The loaded first convolution's filters for the data's channels: as saved when they
    have them, else each filter's mean over its channels (RGB weights on greyscale data)."""
    weight = saved[f"{name}.weight"]
    with torch.no_grad():
        if weight.shape == new.weight.shape:
            new.weight.copy_(weight)
        else:
            new.weight.copy_(weight.mean(dim=1, keepdim=True).expand_as(new.weight))
        if new.bias is not None and f"{name}.bias" in saved:
            new.bias.copy_(saved[f"{name}.bias"])


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
        conv, self.head_name = first_conv(model), last_linear(model)
        saved = None
        if weights_path is not None:
            saved = self.load(model, Path(weights_path), name, conv, self.head_name)
        channels = int(input_shape[0])
        if conv is not None and model.get_submodule(conv).in_channels != channels:
            old = model.get_submodule(conv)
            new = nn.Conv2d(channels, old.out_channels, old.kernel_size, old.stride,
                            old.padding, old.dilation, old.groups, old.bias is not None)  # fmt: skip
            replace(model, conv, new)
        if conv is not None and saved is not None:
            fit_first_conv(model.get_submodule(conv), saved, conv)
        head = model.get_submodule(self.head_name)
        replace(model, self.head_name, nn.Linear(head.in_features, num_classes))
        self.model = model
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for pname, parameter in model.named_parameters():
                parameter.requires_grad = pname.startswith(f"{self.head_name}.")

    @staticmethod
    def load(
        model: nn.Module, path: Path, name: str, conv: str | None, head: str
    ) -> dict[str, Tensor]:
        """Load ``path`` into ``model`` (torchvision's, before it is fitted to the data) and
        return the weights read. The first convolution may have other input channels (a
        checkpoint of this template fitted to greyscale data; ``fit_first_conv`` takes it)
        and the output layer other classes (it is replaced by a fresh one)."""
        saved = read_weights(path, name)
        expected = model.state_dict()
        flexible = {f"{head}.weight", f"{head}.bias"}
        if conv is not None:
            flexible.add(f"{conv}.weight")
        missing = sorted(set(expected) - set(saved))
        unexpected = sorted(set(saved) - set(expected))
        wrong = [k for k in expected if k in saved and not fits(k, saved[k], expected[k], flexible)]
        if missing or unexpected or wrong:
            raise UserInputError(
                f"model.net.weights_path={path} does not fit torchvision's {name}: "
                f"{len(missing)} of its tensors are missing (e.g. {missing[:2]}), "
                f"{len(unexpected)} are not {name}'s (e.g. {unexpected[:2]}), {len(wrong)} have "
                f"other shapes (e.g. {wrong[:2]}). It was saved from another architecture: set "
                "model.net.name to that one, or give weights of this one."
            )
        same = {k: v for k, v in saved.items() if v.shape == expected[k].shape}
        model.load_state_dict(same, strict=False)
        return saved

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def train(self, mode: bool = True) -> TorchvisionNet:
        super().train(mode)
        if self.freeze_backbone:
            for module in self.modules():
                if isinstance(module, _NormBase):
                    module.eval()
        return self
