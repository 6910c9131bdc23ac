"""Regression: metrics in original units, the nets, the configs, the linear yardstick, and
what the two regression experiments learn."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from torch import nn

from src.callbacks.ridge_snr import RidgeSNR, ridge_r2, snr_db
from src.models.components.regression_mlp import RegressionMLP
from src.models.components.residual_cnn1d import ResidualCNN1D
from src.models.regression_module import RegressionModule
from src.train import train
from src.utils.batchnorm import has_batchnorm
from src.utils.errors import UserInputError
from src.utils.instantiators import instantiate_callbacks, instantiate_model
from tests.conftest import compose_config

NAMES = ["price", "rent"]


def module(net: nn.Module | None = None) -> RegressionModule:
    return RegressionModule(
        net=net or nn.Linear(3, 2),
        target_names=NAMES,
        target_mean=[100.0, -5.0],
        target_std=[20.0, 0.5],
        optimizer=lambda params: torch.optim.Adam(params),
    )


def test_metrics_per_target_and_averaged_in_original_units() -> None:
    generator = torch.Generator().manual_seed(0)
    targets = torch.randn(50, 2, generator=generator) * torch.tensor([20.0, 0.5])
    preds = targets + torch.randn(50, 2, generator=generator) * torch.tensor([5.0, 0.2])
    metrics = module().make_metrics().clone(prefix="val/")
    for part in (slice(0, 20), slice(20, 50)):  # accumulated over batches
        metrics.update(preds[part], targets[part])
    values = {k: float(v) for k, v in metrics.compute().items()}
    y, p = targets.numpy(), preds.numpy()
    expected = {}
    for name, score in (
        ("mae", mean_absolute_error),
        ("rmse", root_mean_squared_error),
        ("r2", r2_score),
    ):
        per_target = [score(y[:, i], p[:, i]) for i in range(2)]
        expected[f"val/{name}"] = float(np.mean(per_target))
        expected.update({f"val/{t}/{name}": v for t, v in zip(NAMES, per_target, strict=True)})
    assert values == pytest.approx(expected, rel=1e-4)


def test_loss_on_standardised_targets_outputs_in_original_units() -> None:
    zero = nn.Linear(3, 2)
    nn.init.zeros_(zero.weight)
    nn.init.zeros_(zero.bias)
    lit = module(zero)
    x, y = torch.randn(8, 3), torch.tensor([[120.0, -5.5]] * 8)
    loss, outputs, targets = lit.model_step((x, y))
    assert torch.equal(outputs, torch.tensor([[100.0, -5.0]] * 8))  # the mean, in units
    assert float(loss) == pytest.approx((1.0**2 + 1.0**2) / 2)  # (20/20)^2, (0.5/0.5)^2
    assert torch.equal(lit(x), outputs) and torch.equal(targets, y)
    assert {"target_mean", "target_std"} <= set(lit.state_dict())  # in every checkpoint


def test_regression_mlp_with_and_without_batchnorm() -> None:
    with_bn = RegressionMLP([10], 3, hidden_sizes=[16, 8], batch_norm=True)
    without = RegressionMLP([10], 3, hidden_sizes=[16, 8], batch_norm=False, dropout=0.0)
    assert has_batchnorm(with_bn) and not has_batchnorm(without)
    assert with_bn(torch.randn(4, 10)).shape == (4, 3)
    assert RegressionMLP([2, 5], 1, hidden_sizes=[])(torch.randn(4, 2, 5)).shape == (4, 1)


def test_residual_cnn1d_deep_stack_starts_as_identity_blocks() -> None:
    net = ResidualCNN1D([2, 64], 3, channels=8, num_blocks=12, downsample_every=3)
    assert net(torch.randn(5, 2, 64)).shape == (5, 3)
    # every block starts as its skip connection (the residual branch is zeroed)
    plain = net.blocks[0]
    x = torch.rand(5, 8, 64)
    assert torch.equal(plain(x), x)
    loss = net(torch.randn(5, 2, 64)).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())  # gradients reach the stem
    with pytest.raises(UserInputError, match="at least 4096 samples"):
        ResidualCNN1D([1, 64], 1, num_blocks=12, downsample_every=1)


@pytest.mark.parametrize(
    ("criterion", "loss_type"),
    [("mse", nn.MSELoss), ("huber", nn.HuberLoss), ("l1", nn.L1Loss)],
)
def test_criterion_configs(criterion: str, loss_type: type, tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml",
        ["experiment=diabetes_mlp", f"model/criterion={criterion}", f"paths.data_dir={tmp_path}"],
        tmp_path,
    )
    lit = instantiate_model(cfg.model, hydra.utils.instantiate(cfg.data))
    assert isinstance(lit.criterion, loss_type)


@pytest.mark.parametrize(
    ("experiment", "input_shape", "targets"),
    [
        ("diabetes_mlp", [10], ["progression"]),
        ("signals_cnn1d", [1, 128], ["frequency", "damping"]),
    ],
)
def test_experiment_configs(experiment: str, input_shape, targets, tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml", [f"experiment={experiment}", f"paths.data_dir={tmp_path}"], tmp_path
    )
    assert cfg.optimized_metric == "val/r2_best"
    for name in ("model_checkpoint", "early_stopping"):
        assert (cfg.callbacks[name].monitor, cfg.callbacks[name].mode) == ("val/r2", "max")
    assert any(isinstance(c, RidgeSNR) for c in instantiate_callbacks(cfg.callbacks))
    dm = hydra.utils.instantiate(cfg.data)
    lit = instantiate_model(cfg.model, dm)
    assert dm.spec["input_shape"] == input_shape and lit.target_names == targets
    lit.eval()
    assert lit(torch.zeros(2, *input_shape)).shape == (2, len(targets))


def test_tabular_config_needs_a_path(tmp_path: Path) -> None:
    from src.utils.errors import UserInputError

    cfg = compose_config("train.yaml", ["data=tabular", "model=regression_mlp"], tmp_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    with pytest.raises(UserInputError, match="data.path is not set"):
        instantiate_model(cfg.model, datamodule)  # the data module's spec reads the table


def test_snr_in_db() -> None:
    assert snr_db(0.5) == pytest.approx(0.0)
    assert snr_db(0.9) == pytest.approx(10 * np.log10(9))
    assert snr_db(-0.2) == pytest.approx(-60.0)  # worse than the mean: clipped, finite
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = np.stack([x @ [1.0, 2.0, 0.0] + rng.normal(size=400), rng.normal(size=400)], axis=1)
    r2 = ridge_r2(x, y, [0.1, 1.0, 10.0])
    assert r2[0] == pytest.approx(5 / 6, abs=0.05)  # explained variance 5, noise 1
    assert abs(r2[1]) < 0.05  # noise: nothing to explain


def ridge_test_r2(datamodule) -> float:
    """RidgeCV fitted on the training split, scored on the test split: the baseline."""
    from sklearn.linear_model import RidgeCV

    (xtr, ytr), (xte, yte) = datamodule.splits["train"], datamodule.splits["test"]
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(xtr.flatten(1).numpy(), ytr.numpy())
    return float(r2_score(yte.numpy(), ridge.predict(xte.flatten(1).numpy())))


def test_diabetes_mlp_matches_the_ridge_baseline(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml", ["experiment=diabetes_mlp", f"paths.data_dir={tmp_path}"], tmp_path
    )
    metrics, objects = train(cfg)
    r2, baseline = float(metrics["test/r2"]), ridge_test_r2(objects["datamodule"])
    print(
        f"diabetes_mlp test/r2={r2:.4f}, RidgeCV test R²={baseline:.4f}, "
        f"RidgeCV leave-one-out R² on train={float(metrics['data/ridge_r2']):.4f} "
        f"(SNR {float(metrics['data/snr_db']):.2f} dB)"
    )
    assert r2 >= baseline - 0.03
    assert float(metrics["data/ridge_r2"]) == pytest.approx(0.49, abs=0.05)
    assert float(metrics["test/mae"]) == pytest.approx(float(metrics["test/progression/mae"]))
    assert 35 < float(metrics["test/mae"]) < 55  # in the target's units (sd about 77)
    best = objects["trainer"].checkpoint_callback.best_model_path
    saved = torch.load(best, weights_only=True)
    assert float(saved["state_dict"]["target_std"]) == pytest.approx(76.6, abs=0.5)


def train_signals(tmp_path: Path, *overrides: str) -> dict[str, float]:
    cfg = compose_config("train.yaml", ["experiment=signals_cnn1d", *overrides], tmp_path)
    metrics, _ = train(cfg)
    scores = {k: float(v) for k, v in metrics.items() if k.startswith(("test/", "data/"))}
    print("signals_cnn1d", {k: round(v, 4) for k, v in sorted(scores.items())})
    return scores


SMALL_SIGNALS = [
    "data.num_samples=2000",
    "data.batch_size=32",
    "model.net.channels=16",
    "model.net.num_blocks=4",
    "trainer.max_epochs=12",
]


def test_signals_cnn1d_learns_both_targets_small(tmp_path: Path) -> None:
    """The experiment at a third of its cost: still R² >= 0.9 on each target, where a
    linear model on the raw samples explains nothing."""
    scores = train_signals(tmp_path, *SMALL_SIGNALS)
    assert scores["test/frequency/r2"] >= 0.9 and scores["test/damping/r2"] >= 0.9
    assert scores["data/ridge_r2"] < 0.1


@pytest.mark.slow
def test_signals_cnn1d_experiment(tmp_path: Path) -> None:
    scores = train_signals(tmp_path)
    assert scores["test/frequency/r2"] >= 0.95 and scores["test/damping/r2"] >= 0.9


def test_ridge_snr_refuses_classification_data(tmp_path: Path) -> None:
    from src.utils.errors import UserInputError

    cfg = compose_config(
        "train.yaml",
        ["callbacks=ridge_snr", "trainer.max_epochs=1", "+trainer.limit_train_batches=1"],
        tmp_path,
    )
    with pytest.raises(UserInputError, match="needs a regression data module"):
        train(cfg)
