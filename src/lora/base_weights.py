"""The frozen weights a LoRA adapter is trained on, read from wherever they are.

A base is a training run of this template (its best checkpoint), one of its
``.ckpt`` files, or a plain state-dict file of the net (``.pt``/``.pth`` from
``torch.save(net.state_dict())``, or ``.safetensors``), which is how
torchvision and other libraries ship pretrained weights. The base is named
by its resolved path and a fingerprint of its tensors: an adapter records
both, so that it is never applied to, or fused with, an adapter of another
base by mistake.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from src.utils.checkpoints import (
    best_checkpoint,
    describe_mismatch,
    load_weights_only,
    read_checkpoint,
)
from src.utils.errors import UserInputError

# a Lightning checkpoint's state dict names the net's weights "net.<name>"
NET_PREFIX = "net."


def within(name: str, modules: list[str]) -> bool:
    """Whether the weight or layer ``name`` belongs to one of ``modules`` (full names)."""
    return any(name == m or name.startswith(f"{m}.") for m in modules)


@dataclass(frozen=True)
class BaseWeights:
    """A net's state dict and the file it came from."""

    path: Path
    state_dict: dict[str, Tensor]

    @classmethod
    def read(cls, location: str | Path) -> BaseWeights:
        path = Path(location)
        if path.is_dir():
            path = best_checkpoint(path)
        if not path.is_file():
            raise UserInputError(
                f"Base weights {location} do not exist. Set model.lora.base_ckpt to a training "
                "run directory, a .ckpt file of this template, or a state-dict file "
                "(.pt, .pth, .safetensors) of the configured net."
            )
        if path.suffix == ".safetensors":
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                return cls(path.resolve(), load_file(path))
            except (SafetensorError, OSError, ValueError) as error:
                raise UserInputError(
                    f"Base weights {path} cannot be read as safetensors ({error}): the file "
                    "is corrupt, truncated or not a .safetensors file."
                ) from None
        if path.suffix == ".ckpt":
            saved = read_checkpoint(path)["state_dict"]
            net = {
                k.removeprefix(NET_PREFIX): v for k, v in saved.items() if k.startswith(NET_PREFIX)
            }
            return cls(path.resolve(), net)
        state = load_weights_only(path, "Base weights")
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise UserInputError(
                f"Base weights {path} are not a state dict (a mapping of names to tensors). "
                "Save them with torch.save(net.state_dict(), path)."
            )
        return cls(path.resolve(), state)

    @property
    def fingerprint(self) -> str:
        """A short hash of every name and tensor: equal for equal weights, wherever stored."""
        digest = hashlib.sha256()
        for name in sorted(self.state_dict):
            tensor = self.state_dict[name].detach().cpu().contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.flatten().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    def load_into(self, net: nn.Module, fresh: list[str]) -> None:
        """Copy the weights into ``net``, except those of the ``fresh`` modules (full
        names), which keep their new initialisation. Stops on any other mismatch."""
        saved = {k: v for k, v in self.state_dict.items() if not within(k, fresh)}
        expected = {k: v for k, v in net.state_dict().items() if not within(k, fresh)}
        mismatch = describe_mismatch(saved, expected)
        if mismatch:
            adapted = any("lora_A" in k for k in saved)
            lora = (
                " It is a LoRA run's checkpoint: merge it first (src/lora/merge.py)."
                if adapted
                else ""
            )
            raise UserInputError(
                f"Base weights {self.path} do not fit the configured net {type(net).__name__} "
                f"({mismatch}).{lora} Configure model.net as the base was trained, or list "
                "the layers that differ in model.lora.modules_to_save (a new output head: [head.4] for "
                "the cnn and mlp nets, [heads.outputs] for the VIMH nets on data with other "
                "parameters)."
            )
        net.load_state_dict(saved, strict=False)
