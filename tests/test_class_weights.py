"""model.class_weights: auto (from the training split's counts) or a list, on an imbalanced split."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import InstantiationException

from src.utils.errors import UserInputError
from src.utils.instantiators import instantiate_run
from tests.conftest import compose_config

RARE, KEEP = (3, 8), 5  # digits 3 and 8 keep 5 training samples each (of about 108)


def fit_imbalanced(tmp_path: Path, *overrides: str) -> tuple[torch.Tensor, list[float]]:
    """Fit the digits MLP for 5 epochs on a training split where RARE are rare; returns
    the loss's class weights, the training labels and the test recall of each rare digit."""
    cfg = compose_config(
        "train.yaml",
        [
            "trainer.max_epochs=5",
            "logger=none",
            "callbacks=none",
            "model.scheduler=null",
            *overrides,
        ],
        tmp_path,
    )
    L.seed_everything(0)
    objects = instantiate_run(cfg)
    datamodule, model = objects["datamodule"], objects["model"]
    datamodule.setup()
    x, y = datamodule.splits["train"]
    keep = torch.ones(len(y), dtype=torch.bool)
    for digit in RARE:
        keep[torch.nonzero(y == digit).flatten()[KEEP:]] = False
    datamodule.splits["train"] = (x[keep], y[keep])
    objects["trainer"].fit(model, datamodule=datamodule)
    x_test, y_test = datamodule.splits["test"]
    with torch.no_grad():
        predicted = model.eval()(x_test).argmax(dim=1)
    recall = [float((predicted[y_test == d] == d).float().mean()) for d in RARE]
    return model.criterion.weight, y[keep], recall


def test_auto_and_list_weights_learn_the_rare_classes(tmp_path: Path) -> None:
    none, _, plain = fit_imbalanced(tmp_path / "plain")
    assert none is None
    weights, labels, auto = fit_imbalanced(tmp_path / "auto", "model.class_weights=auto")
    # the weights are n / (10 x count) of the imbalanced training split: 1,077 - 2 x ~103
    expected = len(labels) / (10 * torch.bincount(labels, minlength=10).float())
    torch.testing.assert_close(weights, expected)
    assert float(weights[RARE[0]]) == pytest.approx(len(labels) / (10 * KEEP))
    # a plain list (a TypeError about buffer 'weight' before) gives the same kind of result
    listed = ",".join(f"{float(w):.4f}" for w in weights)
    _, _, from_list = fit_imbalanced(tmp_path / "list", f"model.class_weights=[{listed}]")
    print(f"rare-digit test recall: unweighted {plain}, auto {auto}, list {from_list}")
    assert max(plain) < 0.2  # unweighted, 5 samples of 1,000 are not learned in 5 epochs
    assert min(auto) > 0.4 and min(from_list) > 0.4


def test_bad_class_weights_are_one_message(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["model.class_weights=[1,2]"], tmp_path)
    with pytest.raises(
        (UserInputError, InstantiationException), match="one positive weight per class: 10 classes"
    ):
        instantiate_run(cfg)
    cfg = compose_config(
        "train.yaml",
        ["model.class_weights=auto", "model.criterion._target_=torch.nn.MSELoss"],
        tmp_path,
    )
    with pytest.raises(
        (UserInputError, InstantiationException), match="needs a loss with per-class weights"
    ):
        instantiate_run(cfg)
