"""The net as it is deployed: raw inputs in, the model's answers out.

``deployable(model, datamodule)`` wraps ``model.net`` with the run's input
normalisation in front and, for a regression module, the inverse of its target
scaling behind, so ONNX users feed the values the data set holds and get answers
in its units:

- in-memory data (digits, MNIST, tables, signals, VIMH): the inputs before
  normalisation, as the data module loads them (``load_samples``: digits and MNIST
  pixels as 0..1, table rows in their own units, VIMH image bytes 0..255 as floats
  and levels in dB); the training split's mean/std (a regression module's from the
  checkpoint) are constants of the graph;
- image folders: the eval transform's output as 0..1 floats (resize first), the
  per-channel mean/std in the graph;
- other data (audio folders): the net's own inputs (the report says so).

``raw_test_inputs`` gives the test split in that form, and the model's answers on
the normalised test split, so the export is checked against what the model says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from src.data.image_folder_datamodule import ImageFolderDataModule
from src.data.in_memory_datamodule import InMemoryDataModule
from src.models.regression_module import RegressionModule

Inputs = tuple[Tensor, ...]


class Deployable(nn.Module):
    """``finish(net(*prepare(inputs)))``: ``prepare`` and ``finish`` hold only tensor
    arithmetic, which the exporter traces into the graph."""

    def __init__(
        self,
        net: nn.Module,
        prepare: Callable[[Inputs], Inputs],
        finish: Callable[[Any], Any] | None,
    ) -> None:
        super().__init__()
        self.net, self.prepare, self.finish = net, prepare, finish
        self.eval()  # inference only, the wrapper too: the exporter checks the outer module

    def forward(self, *inputs: Tensor) -> Any:
        outputs = self.net(*self.prepare(inputs))
        return self.finish(outputs) if self.finish is not None else outputs


def in_memory_prepare(datamodule: InMemoryDataModule) -> Callable[[Inputs], Inputs]:
    """The data module's ``normalise`` of (x, *rest), without the labels it also takes."""
    no_labels = torch.zeros(0)

    def prepare(inputs: Inputs) -> Inputs:
        x, _, *rest = datamodule.normalise(inputs[0], no_labels, *inputs[1:])
        return (x, *rest)

    return prepare


def image_prepare(mean: list[float], std: list[float]) -> Callable[[Inputs], Inputs]:
    mean_t, std_t = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    return lambda inputs: ((inputs[0] - mean_t) / std_t, *inputs[1:])


def regression_finish(model: RegressionModule) -> Callable[[Tensor], Tensor]:
    mean, std = model.target_mean.detach().clone(), model.target_std.detach().clone()
    return lambda scaled: scaled * std + mean


def deployable(model: Any, datamodule: Any) -> tuple[Deployable, str]:
    """The deployable net (data module set up for the test split) and what its inputs are."""
    net = model.net.eval()
    finish = regression_finish(model) if isinstance(model, RegressionModule) else None
    if isinstance(datamodule, InMemoryDataModule):
        datamodule.setup()  # the training split's statistics (a regression module's restored)
        what = "raw inputs before normalisation (as the data set holds them)"
        return Deployable(net, in_memory_prepare(datamodule), finish), what
    datamodule.setup("test")
    if isinstance(datamodule, ImageFolderDataModule) and datamodule.mean is not None:
        prepare = image_prepare(datamodule.mean, datamodule.std)
        what = "images after the eval transform, as 0..1 floats (normalised in the graph)"
        return Deployable(net, prepare, finish), what
    return Deployable(
        net, lambda inputs: inputs, finish
    ), "the net's own inputs (no normalisation in the graph)"


def raw_test_inputs(model: Any, datamodule: Any) -> list[tuple[Inputs, Inputs]]:
    """Test batches as (raw inputs for the deployable graph, normalised inputs the net
    saw in testing)."""
    if isinstance(datamodule, InMemoryDataModule):
        split = datamodule.finish_split(datamodule.load_splits())
        raw = split.parts["test"]
        raw = (datamodule.from_raw(raw[0]), *(t.float() for t in raw[2:]))
        normalised = [model.net_inputs(b) for b in datamodule.test_dataloader()]
        pairs, start = [], 0
        for inputs in normalised:
            stop = start + len(inputs[0])
            pairs.append((tuple(t[start:stop] for t in raw), inputs))
            start = stop
        return pairs
    pairs = []
    for batch in datamodule.test_dataloader():
        inputs = model.net_inputs(batch)
        if isinstance(datamodule, ImageFolderDataModule) and datamodule.mean is not None:
            mean = torch.tensor(datamodule.mean).view(-1, 1, 1)
            std = torch.tensor(datamodule.std).view(-1, 1, 1)
            pairs.append(((inputs[0] * std + mean, *inputs[1:]), inputs))
        else:
            pairs.append((inputs, inputs))
    return pairs
