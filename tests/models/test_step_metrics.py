"""What the training and validation steps count: the metrics a task module updates each
batch (each metric directly, not through MetricCollection.update) equal the same
numbers computed by hand over the batches it saw."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from src.models.classification_module import ClassificationModule
from src.models.regression_module import RegressionModule


def test_classification_step_accuracy_is_the_batches_accuracy() -> None:
    torch.manual_seed(0)
    module = ClassificationModule(nn.Linear(6, 4), 4, partial(torch.optim.Adam, lr=0.01))
    correct = samples = 0
    for size in (32, 32, 11):
        x, y = torch.randn(size, 6), torch.randint(0, 4, (size,))
        module.training_step((x, y), 0)
        correct += int((module.net(x).argmax(1) == y).sum())
        samples += size
    values = module.train_metrics.compute()
    assert abs(float(values["train/acc"]) - correct / samples) < 1e-6
    assert 0 < correct < samples  # an untrained 4-class net: neither all right nor all wrong
    module.train_metrics.reset()
    assert int(module.train_metrics["train/acc"].samples) == 0


def test_regression_step_metrics_are_the_batches_errors() -> None:
    torch.manual_seed(0)
    module = RegressionModule(
        nn.Linear(3, 2), ["a", "b"], [1.0, -2.0], [2.0, 0.5], partial(torch.optim.Adam)
    )
    errors = []
    for size in (16, 16, 5):
        x, y = torch.randn(size, 3), torch.randn(size, 2) * 3
        module.validation_step((x, y), 0)
        errors.append(module(x).detach() - y)
    error = torch.cat(errors)
    values = module.val_metrics.compute()
    mae = error.abs().mean(0)
    rmse = error.pow(2).mean(0).sqrt()
    assert torch.allclose(values["val/mae"], mae.mean())
    assert torch.allclose(values["val/rmse"], rmse.mean())
    assert torch.allclose(values["val/b/mae"], mae[1])
