"""Fusion weights mean what they say: an adapter fused with itself is given back, also by
the svd methods on nets with a 1-output layer (a regression head)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.lora.fusion import fuse, peft_weights, with_head
from src.lora.net import LoRANet, load_adapted


def make_net(outputs: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, outputs))


def random_adapter(tmp_path: Path, name: str, outputs: int = 4, r: int = 2) -> tuple[Path, list]:
    torch.manual_seed(len(name))
    base = tmp_path / "base.pt"
    if not base.exists():
        torch.save(make_net(outputs).state_dict(), base)
    lora = LoRANet(make_net(outputs), str(base), r=r, lora_alpha=2 * r)
    for param_name, param in lora.named_parameters():
        if "lora_B" in param_name:
            torch.nn.init.normal_(param)  # B starts at zero: make the update non-zero
    layers = [m for m in lora.modules() if hasattr(m, "get_delta_weight")]
    deltas = [layer.get_delta_weight("default").detach() for layer in layers]
    lora.save_adapter(tmp_path / name)
    return tmp_path / name, deltas


def fused_deltas(config, weights) -> list[torch.Tensor]:
    scale = config.lora_alpha / config.r
    return [
        weights[f"base_model.model.{n}.lora_B.weight"]
        @ weights[f"base_model.model.{n}.lora_A.weight"]
        * scale
        for n in ("0", "2")
    ]


@pytest.mark.parametrize("method", ["linear", "cat", "svd", "ties"])
def test_an_adapter_fused_with_itself_is_itself(tmp_path: Path, method: str) -> None:
    adapter, deltas = random_adapter(tmp_path, "a")
    options = {"density": 1.0, "majority_sign_method": "total"} if method == "ties" else {}
    config, weights = fuse(make_net(), [adapter, adapter], [1.0, 1.0], method, **options)
    for got, want in zip(fused_deltas(config, weights), deltas, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", ["cat", "svd"])
def test_weights_are_shares_of_the_updates(tmp_path: Path, method: str) -> None:
    """weights [1, 3]: the fused update is dW1 / 4 + 3 dW2 / 4 (svd at full rank)."""
    (a, da), (b, db) = random_adapter(tmp_path, "a"), random_adapter(tmp_path, "bb")
    options = {"svd_rank": 4} if method == "svd" else {}
    config, weights = fuse(make_net(), [a, b], [1.0, 3.0], method, **options)
    for got, u, v in zip(fused_deltas(config, weights), da, db, strict=True):
        torch.testing.assert_close(got, 0.25 * u + 0.75 * v, atol=1e-5, rtol=1e-4)


def test_peft_weights_by_hand() -> None:
    assert peft_weights("linear", [1, 1]) == [0.25, 0.25]  # sqrt on A and B: 1/2 each
    assert peft_weights("cat", [1, 3]) == [0.25, 0.75]
    assert peft_weights("ties", [1, 1]) == [1.0, 1.0]  # ties averages already


@pytest.mark.parametrize("method", ["svd", "ties_svd", "magnitude_prune_svd"])
def test_svd_fuses_a_one_output_layer_in_the_adapters_shapes(tmp_path: Path, method) -> None:
    """A 1-output layer (a regression head) at rank 2: peft alone writes a rank-1 lora_B
    into the rank-2 adapter (which then does not load); padded, the fused adapter has the
    rank-2 shapes and fusing an adapter with itself gives it back."""
    adapter, deltas = random_adapter(tmp_path, "reg", outputs=1, r=2)
    options = {} if method == "svd" else {"density": 1.0, "majority_sign_method": "total"}
    config, weights = fuse(make_net(1), [adapter, adapter], [1.0, 1.0], method, **options)
    assert config.r == 2
    assert tuple(weights["base_model.model.2.lora_B.weight"].shape) == (1, 2)
    assert tuple(weights["base_model.model.2.lora_A.weight"].shape) == (2, 5)
    for got, want in zip(fused_deltas(config, weights), deltas, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # and it loads into the 1-output net (peft checks every shape) with the same update
    with_head(tmp_path / "fused", config, weights, adapter)
    loaded = load_adapted(make_net(1), tmp_path / "fused")
    layer = loaded.base_model.model[2]
    torch.testing.assert_close(layer.get_delta_weight("default"), deltas[1], atol=1e-5, rtol=1e-4)
