"""LoRA adapters (peft) on any net: what a task module sees as its ``net``.

``configs/model/lora/`` wraps ``model.net`` in ``LoRANet`` before the task
module is built, so classification, regression and multihead modules get
LoRA without knowing of it. The base weights are loaded, frozen, and get
low-rank adapters on the chosen layers; ``modules_to_save`` (a new output
head) start fresh and train in full. Only those parameters require gradients,
so only they reach the optimizer.

Frozen normalisation layers stay in eval mode while training: their running
statistics are part of the base, and an adapter is only reusable if the base
it is applied to is the one it was trained on.

peft is imported only here and only when a LoRA net is built: importing it
takes seconds.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from src.lora.base_weights import BaseWeights, within
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)

# the layer types peft's LoRA adapts (and the default targets)
LORA_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)

# where an adapter keeps its weights inside LoRANet's state dict
PEFT_PREFIX = "model."


def matches(name: str, pattern: str | Sequence[str]) -> bool:
    """peft's rule: a regex must match the whole name; a listed name matches itself
    and every name ending in ``.<name>``."""
    if isinstance(pattern, str):
        return re.fullmatch(pattern, name) is not None
    return any(name == p or name.endswith(f".{p}") for p in pattern)


def layer_list(net: nn.Module, limit: int = 30) -> str:
    leaves = [
        f"{n} ({type(m).__name__})" for n, m in net.named_modules() if n and not any(m.children())
    ]
    more = f", and {len(leaves) - limit} more" if len(leaves) > limit else ""
    return ", ".join(leaves[:limit]) + more


# modules that only hold others (no forward of their own): peft cannot wrap one as a whole
CONTAINERS = (nn.ModuleDict, nn.ModuleList)


def resolve_modules(net: nn.Module, names: Sequence[str]) -> list[str]:
    """The full names of the modules ``names`` match, a container (``heads.outputs``, the
    multihead nets' ModuleDict of output layers) replaced by its members, as peft wraps
    modules that run; stops on a name that matches none."""
    found = [n for n, _ in net.named_modules() if n and matches(n, names)]
    unknown = [p for p in names if not any(matches(n, [p]) for n in found)]
    if unknown:
        raise UserInputError(
            f"model.lora.modules_to_save names {unknown}, which are not layers of "
            f"{type(net).__name__}. Its layers: {layer_list(net)}."
        )
    members: list[str] = []
    for name in found:
        module = net.get_submodule(name)
        if isinstance(module, CONTAINERS):
            inner = [f"{name}.{child}" for child, _ in module.named_children()]
            members += resolve_modules(net, inner) if inner else []
        else:
            members.append(name)
    return [n for n in dict.fromkeys(members) if not within(n, [m for m in members if m != n])]


def replaced_scope(net: nn.Module, fresh: list[str]) -> list[str]:
    """``fresh`` plus each container all of whose members are fresh: the base weights under
    it are not loaded, so a base whose heads were others (``note_number`` where the new
    data have ``filter_cutoff``) fits a net with new heads in ``heads.outputs``."""
    scope = list(fresh)
    for name, module in net.named_modules():
        children = [f"{name}.{c}" if name else c for c, _ in module.named_children()]
        if isinstance(module, CONTAINERS) and children and all(within(c, scope) for c in children):
            scope.append(name)
    return scope


def select_targets(
    net: nn.Module, target_modules: str | Sequence[str] | None, fresh: list[str]
) -> list[str]:
    """The full names of the layers that get adapters: the Linear, Conv and Embedding
    layers that ``target_modules`` matches (all of them for ``None``), outside ``fresh``."""
    layers = [
        n for n, m in net.named_modules() if isinstance(m, LORA_LAYERS) and not within(n, fresh)
    ]
    if target_modules is None:
        return layers
    targets = [n for n in layers if matches(n, target_modules)]
    if not targets and len(target_modules) > 0:
        raise UserInputError(
            f"model.lora.target_modules={target_modules!r} matches no Linear, Conv or "
            f"Embedding layer of {type(net).__name__} outside modules_to_save. Its layers: "
            f"{layer_list(net)}. Give some of these names, a regex, or null for all of them."
        )
    return targets


def check_quantize(quantize: str | None) -> None:
    """Quantised LoRA needs bitsandbytes on a CUDA GPU: say so before any work."""
    if quantize is None:
        return
    if quantize not in ("4bit", "8bit"):
        raise UserInputError(f"model.lora.quantize={quantize} must be null, 4bit or 8bit.")
    lacking = [
        what
        for what, present in (
            ("a CUDA GPU", torch.cuda.is_available()),
            ("the bitsandbytes package", importlib.util.find_spec("bitsandbytes") is not None),
        )
        if not present
    ]
    if lacking:
        raise UserInputError(
            f"model.lora.quantize={quantize} needs CUDA and `bitsandbytes` (pip install "
            f"bitsandbytes), and this machine lacks {' and '.join(lacking)}. Use "
            "model.lora.quantize=null here, or run on an NVIDIA GPU."
        )


def quantize_linears(net: nn.Module, quantize: str, fresh: list[str]) -> None:
    """Replace the frozen Linear layers by bitsandbytes' 4 or 8 bit ones (on the GPU,
    where bitsandbytes quantises them), as QLoRA does."""
    import bitsandbytes as bnb

    for name, layer in list(net.named_modules()):
        if not isinstance(layer, nn.Linear) or within(name, fresh):
            continue
        shape = (layer.in_features, layer.out_features, layer.bias is not None)
        if quantize == "4bit":
            new = bnb.nn.Linear4bit(*shape, compute_dtype=torch.bfloat16, quant_type="nf4")
            new.weight = bnb.nn.Params4bit(layer.weight.data, requires_grad=False, quant_type="nf4")
        else:
            new = bnb.nn.Linear8bitLt(*shape, has_fp16_weights=False)
            new.weight = bnb.nn.Int8Params(
                layer.weight.data, requires_grad=False, has_fp16_weights=False
            )
        if layer.bias is not None:
            new.bias = nn.Parameter(layer.bias.data, requires_grad=False)
        parent, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent), child, new)
    net.cuda()


class LoRANet(nn.Module):
    """``net`` with base weights, frozen, and LoRA adapters (a peft ``PeftModel``).

    Args:
        net: the configured net (``model.net``), fresh.
        base_ckpt: the base weights (see ``BaseWeights``); ``None`` for a run of
            ``base_experiment``, trained on first use (see ``src/lora/base_run.py``).
        base_experiment, base_overrides, base_runs_dir, data_dir, log_dir: that base run:
            its experiment and overrides, where base runs are kept, and the data and log
            directories it is trained with.
        train_missing_base: train that base run when it is missing; false makes a missing
            base an error (set on a saved run config that is not trusted, which may not
            start a training run: ``src.utils.trusted_targets.forbid_training``).
        target_modules: layers that get adapters: ``None`` for every Linear, Conv and
            Embedding layer, names (a name matches any layer ending in it), a regex,
            or ``[]`` for none (only ``modules_to_save`` train: a linear probe).
        r, lora_alpha, lora_dropout: rank, scale (``lora_alpha / r``) and input
            dropout of the adapters.
        modules_to_save: layers trained in full from fresh weights and saved with
            the adapter, typically a new output head; a container names all its members
            (``heads.outputs``: one new head per parameter of the new data, the base's
            heads left out whatever their names and sizes).
        quantize: ``None``, ``"4bit"`` or ``"8bit"`` (bitsandbytes, CUDA only).
    """

    def __init__(
        self,
        net: nn.Module,
        base_ckpt: str | None,
        target_modules: str | Sequence[str] | None = None,
        r: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.0,
        modules_to_save: Sequence[str] = (),
        quantize: str | None = None,
        base_experiment: str | None = None,
        base_overrides: Sequence[str] = (),
        base_runs_dir: str = "logs/lora_bases",
        data_dir: str = "data",
        log_dir: str = "logs",
        train_missing_base: bool = True,
    ) -> None:
        super().__init__()
        check_quantize(quantize)
        fresh = resolve_modules(net, list(modules_to_save))
        if base_ckpt is None:
            if not base_experiment:
                raise UserInputError(
                    "model.lora.base_ckpt is null and model.lora.base_experiment is not set: "
                    "give the base weights (a run directory, .ckpt, .pt or .safetensors) or "
                    "the experiment whose run is the base (trained on first use)."
                )
            from src.lora.base_run import find_or_train_base

            base_ckpt = str(
                find_or_train_base(
                    base_experiment,
                    base_overrides,
                    base_runs_dir,
                    data_dir,
                    log_dir,
                    may_train=train_missing_base,
                )
            )
        base = BaseWeights.read(base_ckpt)
        base.load_into(net, replaced_scope(net, fresh))
        targets = select_targets(net, target_modules, fresh)
        if not (targets or fresh):
            raise UserInputError(
                "model.lora.target_modules=[] and no modules_to_save: nothing would train. "
                "Name layers to adapt, or a new head in model.lora.modules_to_save."
            )
        if quantize:
            quantize_linears(net, quantize, fresh)

        from peft import LoraConfig, get_peft_model
        from peft.utils.constants import DUMMY_TARGET_MODULES

        config = LoraConfig(
            # an explicit list of full names: adapters of any two runs can be fused
            target_modules=targets or DUMMY_TARGET_MODULES,
            r=r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            modules_to_save=fresh or None,
        )
        self.model = get_peft_model(net, config)
        saved_config = self.model.peft_config["default"]
        saved_config.base_model_name_or_path = str(base.path)
        saved_config.revision = base.fingerprint  # which base: checked when loading or fusing
        self.train()  # modules start in training mode, and Lightning keeps the mode they have
        frozen_norms = sum(not m.training for m in self.modules())
        if frozen_norms:  # the base's norm layers keep its running statistics (train below)
            warnings.filterwarnings(
                "ignore", message=rf"Found {frozen_norms} module\(s\) in eval mode at the start"
            )  # Lightning's warning for exactly these (another module left in eval still warns)
        trainable, total = self.model.get_nb_trainable_parameters()
        log.info(
            f"LoRA: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.2f}%): "
            f"adapters (r={r}) on {targets or 'no layer'}, trained in full: {fresh or 'nothing'}"
        )

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.model(*args, **kwargs)

    def train(self, mode: bool = True) -> LoRANet:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, _NormBase) and not any(
                p.requires_grad for p in module.parameters()
            ):
                module.eval()
        return self

    def save_adapter(
        self, directory: str | Path, state_dict: dict[str, Tensor] | None = None
    ) -> None:
        """Write the adapter in peft's format: ``adapter_config.json`` and
        ``adapter_model.safetensors``. ``state_dict`` (keyed as this net's own) gives
        the weights to save, for example a checkpoint's, instead of the current ones."""
        if state_dict is not None:
            state_dict = {
                k.removeprefix(PEFT_PREFIX): v
                for k, v in state_dict.items()
                if k.startswith(PEFT_PREFIX)
            }
        # no embedding layers to save: the base is not a transformers model with a vocabulary
        self.model.save_pretrained(
            str(directory), state_dict=state_dict, save_embedding_layers=False
        )


def load_adapted(net: nn.Module, adapter_dir: str | Path) -> nn.Module:
    """``net`` (fresh, configured as in the LoRA run) with the adapter's base weights and
    the adapter applied: the fine-tuned net, as a peft ``PeftModel``."""
    from peft import LoraConfig, PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UserInputError(f"{adapter_dir} holds no adapter (adapter_config.json is missing).")
    config = LoraConfig.from_pretrained(str(adapter_dir))
    base = BaseWeights.read(config.base_model_name_or_path)
    if base.fingerprint != config.revision:
        raise UserInputError(
            f"The base weights {base.path} have changed since the adapter {adapter_dir} was "
            f"trained on them (fingerprint {base.fingerprint}, adapter expects {config.revision})."
        )
    base.load_into(net, replaced_scope(net, list(config.modules_to_save or [])))
    return PeftModel.from_pretrained(net, str(adapter_dir))
