"""Fusing LoRA adapters trained from one base: peft's combinations, and SLERP.

peft's ``add_weighted_adapter`` combines adapters linearly, by TIES, DARE
(linear and TIES variants), magnitude pruning, concatenation or SVD. SLERP,
not in peft, interpolates two adapters along the great circle between their
weight updates, layer by layer: the result is ``a * dW1 + b * dW2`` with
scalars ``a, b`` from the angle between the layer's two updates, so it is
exactly the concatenation of the two adapters with those weights (rank
``r1 + r2``).

Output heads (``modules_to_save``) belong to one task each and are not fused:
the fused adapter holds the fused low-rank updates, and ``with_head`` pairs
it with the head of one source task.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from src.utils.errors import UserInputError

# peft's combination types that combine the A and B matrices one by one: equal ranks only
EQUAL_RANK_METHODS = ("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune")
PEFT_METHODS = (
    *EQUAL_RANK_METHODS,
    "cat",
    "svd",
    "ties_svd",
    "dare_linear_svd",
    "dare_ties_svd",
    "magnitude_prune_svd",
)
METHODS = (*PEFT_METHODS, "slerp")

FUSED = "fused"  # the fused adapter's name inside the peft model

# how peft applies a method's weights, and so what it must be given for the fused update
# to be the weighted average of the sources' updates (w_i: the shares, summing to 1)
SQRT_OF_WEIGHT_ON_A_AND_B = ("linear", "dare_linear", "magnitude_prune")  # A, B: sqrt(w) each
DISJOINT_MEAN = ("ties", "dare_ties", "ties_svd", "dare_ties_svd")  # already a mean of sources
SVD_METHODS = tuple(m for m in PEFT_METHODS if m.endswith("svd"))


def shares(weights: list[float]) -> list[float]:
    """The weights as shares of their total magnitude: [1, 1] -> [0.5, 0.5]."""
    total = sum(abs(w) for w in weights)
    if total == 0:
        raise UserInputError(f"weights={weights}: at least one weight must be non-zero.")
    return [w / total for w in weights]


def peft_weights(method: str, weights: list[float]) -> list[float]:
    """What ``add_weighted_adapter`` must get for ``method`` so that the fused update is
    the weighted average of the sources (fusing an adapter with itself gives it back).

    peft's linear combines A and B separately with ``sqrt(w)`` each, so ``[1, 1]``
    gives 4x an adapter fused with itself and its shares 2x; it needs the squared
    shares. cat and the svd sums combine whole updates: the shares. ties and dare_ties
    take a mean of the sources already: the shares times the number of sources.
    """
    p = shares(weights)
    if method in SQRT_OF_WEIGHT_ON_A_AND_B:
        return [math.copysign(w * w, w) for w in p]
    if method in DISJOINT_MEAN:
        return [w * len(p) for w in p]
    return p


def pad_small_svd_layers(model: Any) -> None:
    """Let peft's svd methods fuse layers with fewer outputs or inputs than the rank.

    peft keeps ``new_rank`` singular vectors of each layer's fused update; a layer with
    fewer (a 1-output regression head has one) yields a rank-1 ``lora_B`` in a rank-8
    adapter, which does not load (``lora_B [1, 1] vs [1, 8]``). On ``model`` (this peft
    model only, nothing global) such a layer gets all its singular vectors, zero-padded
    to ``new_rank``: the same update in the adapter's shapes. peft's own SVD does the work.
    """
    import torch

    lora_model = model.base_model
    original = lora_model._svd_generalized_task_arithmetic_weighted_adapter

    def padded(kind, adapters, weights, new_rank, target, lora_a, lora_b, *args, **kwargs):
        a_shape, b_shape = lora_a.data.shape, lora_b.data.shape  # (r, in, ...), (out, r, ...)
        rank = min(new_rank, b_shape[0], math.prod(a_shape[1:]))
        if rank == new_rank:
            return original(
                kind, adapters, weights, new_rank, target, lora_a, lora_b, *args, **kwargs
            )
        # stand-ins of the reachable rank: peft reads only their shapes (to reshape convs)
        small_a = lora_a.data.new_zeros((rank, *a_shape[1:]))
        small_b = lora_b.data.new_zeros((b_shape[0], rank, *b_shape[2:]))
        a, b = original(kind, adapters, weights, rank, target, small_a, small_b, *args, **kwargs)
        full_a, full_b = torch.zeros_like(lora_a.data), torch.zeros_like(lora_b.data)
        full_a[:rank], full_b[:, :rank] = a, b
        return full_a, full_b

    lora_model._svd_generalized_task_arithmetic_weighted_adapter = padded


def is_lora_weight(key: str) -> bool:
    """Whether a key of a saved adapter is a low-rank update (not a saved module)."""
    return ".lora_" in key


def slerp_coefficients(u: Tensor, v: Tensor, t: float) -> tuple[float, float]:
    """``(a, b)`` with ``slerp(u, v, t) = a * u + b * v``: the angle is that of the unit
    vectors, the coefficients apply to ``u`` and ``v`` as they are (as mergekit does).
    Nearly parallel updates fall back to linear interpolation."""
    u, v = u.flatten().double(), v.flatten().double()
    cos = float((u @ v) / (u.norm() * v.norm()).clamp_min(1e-12))
    theta = math.acos(max(-1.0, min(1.0, cos)))
    if math.sin(theta) < 1e-6:
        return 1.0 - t, t
    return math.sin((1 - t) * theta) / math.sin(theta), math.sin(t * theta) / math.sin(theta)


def read_adapter_config(directory: Path) -> dict[str, Any]:
    """The adapter's config as plain JSON: enough to check a fusion without importing peft."""
    path = directory / "adapter_config.json"
    if not path.is_file():
        raise UserInputError(f"{directory} holds no adapter (adapter_config.json is missing).")
    return json.loads(path.read_text())


def check_fusable(configs: dict[str, dict[str, Any]], methods: list[str]) -> None:
    """Stop, before any work, on adapters or methods that cannot be fused."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserInputError(f"method={unknown} unknown: choose among {list(METHODS)}.")
    if len(configs) < 2:
        raise UserInputError(
            f"Fusing needs two adapters or more; got {len(configs)}. Name the LoRA runs: "
            "adapters=[<run>,<run>] (make fuse ADAPTERS=<run>,<run>)."
        )
    bases = {name: (c["base_model_name_or_path"], c["revision"]) for name, c in configs.items()}
    if len({revision for _, revision in bases.values()}) > 1:
        listed = "; ".join(f"{n}: {path} (fingerprint {rev})" for n, (path, rev) in bases.items())
        raise UserInputError(
            f"The adapters were trained from different bases ({listed}): only adapters "
            "of one base can be fused."
        )
    ranks = {name: c["r"] for name, c in configs.items()}
    needs_equal = [m for m in methods if m in EQUAL_RANK_METHODS]
    if needs_equal and len(set(ranks.values())) > 1:
        raise UserInputError(
            f"method={needs_equal} needs adapters of equal rank, and the ranks differ "
            f"({', '.join(f'{n}: r={r}' for n, r in ranks.items())}). Use svd, ties_svd, "
            "dare_*_svd, cat or slerp, or train the adapters with the same model.lora.r."
        )
    if "slerp" in methods:
        targets = {tuple(sorted(c["target_modules"])) for c in configs.values()}
        if len(configs) != 2 or len(targets) > 1:
            raise UserInputError(
                "method=slerp interpolates two adapters on the same layers; got "
                f"{len(configs)} adapters on {len(targets)} sets of layers."
            )


def _slerp(model: nn.Module, names: list[str], weights: list[float]) -> None:
    """SLERP as a concatenation whose two halves get each layer's coefficients."""
    from peft.tuners.lora import LoraLayer

    t = weights[1] / (weights[0] + weights[1])
    model.add_weighted_adapter(names, [1.0, 1.0], FUSED, combination_type="cat")
    for layer in model.modules():
        if isinstance(layer, LoraLayer) and FUSED in layer.lora_A:
            first, second = (layer.get_delta_weight(n) for n in names)
            a, b = slerp_coefficients(first, second, t)
            rank = layer.r[names[0]]
            fused_a = layer.lora_A[FUSED].weight.data
            fused_a[:rank] *= a
            fused_a[rank:] *= b


def fuse(
    net: nn.Module, adapters: list[Path], weights: list[float], method: str, **options: Any
) -> tuple[Any, dict[str, Tensor]]:
    """The fused adapter of ``adapters`` (directories) on ``net`` (fresh, of the base's
    architecture): its peft ``LoraConfig`` and weights, without output heads.

    ``options`` go to peft's ``add_weighted_adapter`` (density, majority_sign_method,
    svd_rank); DARE draws from torch's global generator.
    """
    from peft import (
        LoraConfig,
        get_peft_model,
        get_peft_model_state_dict,
        load_peft_weights,
        set_peft_model_state_dict,
    )

    names = [f"source{i}" for i in range(len(adapters))]
    sources = [LoraConfig.from_pretrained(str(directory)) for directory in adapters]
    model = None
    for name, directory, source in zip(names, adapters, sources, strict=True):
        # heads are not fused; the base is set on the result below
        config = replace(source, modules_to_save=None, base_model_name_or_path=None)
        if model is None:
            model = get_peft_model(net, config, adapter_name=name)
        else:
            model.add_adapter(name, config)
        update = {k: v for k, v in load_peft_weights(str(directory)).items() if is_lora_weight(k)}
        loaded = set_peft_model_state_dict(model, update, adapter_name=name)
        if loaded.unexpected_keys:
            raise UserInputError(
                f"Adapter {directory} does not fit the net of the first adapter's run: "
                f"{', '.join(loaded.unexpected_keys[:3])} have no place in it."
            )
    if method == "slerp":
        _slerp(model, names, weights)
    else:
        if method in SVD_METHODS:
            pad_small_svd_layers(model)
        model.add_weighted_adapter(
            names, peft_weights(method, weights), FUSED, combination_type=method, **options
        )
    config = replace(
        model.peft_config[FUSED],
        base_model_name_or_path=sources[0].base_model_name_or_path,
        revision=sources[0].revision,
    )
    return config, get_peft_model_state_dict(model, adapter_name=FUSED)


def with_head(directory: Path, config: Any, weights: dict[str, Tensor], source: Path) -> None:
    """Write the fused adapter with the output head (``modules_to_save``) of the adapter
    in ``source``, in peft's format: a complete adapter for that source's task."""
    from peft import LoraConfig, load_peft_weights
    from peft.utils import SAFETENSORS_WEIGHTS_NAME
    from safetensors.torch import save_file

    head = {k: v for k, v in load_peft_weights(str(source)).items() if not is_lora_weight(k)}
    saved_modules = LoraConfig.from_pretrained(str(source)).modules_to_save
    directory.mkdir(parents=True, exist_ok=True)
    replace(config, modules_to_save=saved_modules, inference_mode=True).save_pretrained(
        str(directory)
    )
    tensors = {k: v.contiguous() for k, v in {**weights, **head}.items()}  # svd makes views
    save_file(tensors, str(directory / SAFETENSORS_WEIGHTS_NAME), {"format": "pt"})
