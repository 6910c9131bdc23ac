"""torchvision architectures as model.net: built offline, fitted to the data, local weights
with clear errors, a frozen backbone that really stays frozen."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision import models

from src.models.components.torchvision_net import TorchvisionNet
from src.utils.errors import UserInputError


def test_any_name_fits_the_data_classes_and_channels() -> None:
    net = TorchvisionNet("resnet18", input_shape=[1, 32, 32], num_classes=7)
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert net.head_name == "fc" and net.model.conv1.in_channels == 1
    small = TorchvisionNet("mobilenet_v3_small", input_shape=[3, 32, 32], num_classes=4)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(UserInputError, match="resnet18"):
        TorchvisionNet("resnet81", input_shape=[3, 32, 32], num_classes=2)


def test_weights_path_loads_and_refuses_missing_or_foreign_files(tmp_path: Path) -> None:
    source = models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    net = TorchvisionNet("resnet18", [3, 32, 32], 5, weights_path=str(tmp_path / "resnet18.pth"))
    assert torch.equal(net.model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert net.model.fc.out_features == 5  # a fresh head for the data's classes
    grey = TorchvisionNet("resnet18", [1, 32, 32], 5, weights_path=str(tmp_path / "resnet18.pth"))
    assert torch.allclose(grey.model.conv1.weight[:, 0], source.conv1.weight.mean(dim=1))
    with pytest.raises(UserInputError, match="does not exist.*nothing is downloaded"):
        TorchvisionNet("resnet18", [3, 32, 32], 5, weights_path=str(tmp_path / "none.pth"))
    torch.save(models.resnet34(weights=None).state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(UserInputError, match="does not fit torchvision's resnet18.*another"):
        TorchvisionNet("resnet18", [3, 32, 32], 5, weights_path=str(tmp_path / "resnet34.pth"))
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(UserInputError, match="not a weights file"):
        TorchvisionNet("resnet18", [3, 32, 32], 5, weights_path=str(tmp_path / "junk.pth"))


def test_weights_of_a_net_fitted_to_other_channels_and_classes(tmp_path: Path) -> None:
    """A template checkpoint of a greyscale 5-class resnet18 starts another run (full
    fine-tuning): every weight but the fresh head's is taken, on 1 or 3 channels."""
    trained = TorchvisionNet("resnet18", [1, 16, 16], 5)
    state = {f"net.{k}": v for k, v in trained.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "run.ckpt")
    again = TorchvisionNet("resnet18", [1, 16, 16], 5, weights_path=str(tmp_path / "run.ckpt"))
    for key, value in trained.state_dict().items():
        assert torch.equal(again.state_dict()[key], value) != key.startswith("model.fc."), key
    rgb = TorchvisionNet("resnet18", [3, 16, 16], 3, weights_path=str(tmp_path / "run.ckpt"))
    assert torch.equal(rgb.model.conv1.weight, trained.model.conv1.weight.expand(-1, 3, -1, -1))
    assert torch.equal(rgb.model.layer4[1].bn2.running_var, trained.model.layer4[1].bn2.running_var)
    assert rgb.model.fc.out_features == 3


def test_frozen_backbone_trains_the_head_only() -> None:
    net = TorchvisionNet("resnet18", [3, 16, 16], 3, freeze_backbone=True)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable == ["model.fc.weight", "model.fc.bias"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    after = net.state_dict()
    changed = sorted(k for k in after if not torch.equal(after[k], before[k]))
    assert changed == ["model.fc.bias", "model.fc.weight"]  # BN statistics kept too
