"""callbacks=dp: DP-SGD with Opacus learns digits at epsilon <= 8 and reports Opacus' epsilon."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config

DP = ["callbacks=[default,dp]", "model.net.batch_norm=false", "model.scheduler=null"]
DP += ["model.optimizer.lr=0.02"]  # noisy gradients want a larger step than Adam's 0.001


def fresh_epsilon(dp, steps: int) -> float:
    """Opacus' RDP accountant, given only the run's noise, sample rate and step count."""
    from opacus.accountants import RDPAccountant

    fresh = RDPAccountant()
    fresh.history = [(dp.noise_multiplier, dp.sample_rate, steps)]
    return fresh.get_epsilon(delta=dp.target_delta)


def dp_callback(trainer):
    return next(c for c in trainer.callbacks if type(c).__name__ == "DifferentialPrivacy")


@pytest.mark.slow  # about 23 s: 5 epochs of per-sample gradients
def test_digits_learns_under_dp_and_epsilon_is_the_accountants(tmp_path: Path) -> None:
    from opacus.optimizers import DPOptimizer

    cfg = compose_config("train.yaml", [*DP, "trainer.max_epochs=5"], tmp_path)
    metrics, objects = train(cfg)
    trainer = objects["trainer"]
    dp = dp_callback(trainer)
    assert isinstance(trainer.optimizers[0], DPOptimizer)
    acc, epsilon = float(metrics["test/acc"]), float(metrics["train/epsilon"])
    expected = fresh_epsilon(dp, trainer.global_step)
    print(
        f"DP digits: test/acc={acc:.4f} epsilon={epsilon:.4f} (accountant {expected:.4f}), "
        f"noise {dp.noise_multiplier:.4f}, {trainer.global_step} steps"
    )
    assert epsilon == pytest.approx(expected, rel=1e-6)
    assert 7.5 <= epsilon <= 8.0  # the noise was chosen to spend the target 8
    assert dp.sample_rate == pytest.approx(1 / 34)
    assert acc > 0.7  # chance is 0.1
    # the checkpoint keeps the plain net's parameter names and loads weights-only
    best = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    assert all(not k.startswith("net._module") for k in best["state_dict"])


def test_noise_is_applied(tmp_path: Path) -> None:
    """Much more noise (epsilon about 0.1) learns far less in the same steps."""
    cfg = compose_config(
        "train.yaml",
        [
            *DP,
            "trainer.max_epochs=2",
            "callbacks.dp.target_epsilon=null",
            "callbacks.dp.noise_multiplier=30",
        ],
        tmp_path,
    )
    metrics, objects = train(cfg)
    epsilon, acc = float(metrics["train/epsilon"]), float(metrics["test/acc"])
    trainer = objects["trainer"]
    assert epsilon == pytest.approx(fresh_epsilon(dp_callback(trainer), trainer.global_step))
    print(f"noise 30: epsilon={epsilon:.4f} test/acc={acc:.4f}")
    assert epsilon < 0.2 and acc < 0.5


def test_no_known_noise_warnings(tmp_path: Path, recwarn) -> None:
    """The noise search's 'Optimal order is the largest alpha' (its too-noisy probes) and
    torch's full-backward-hook warning (Opacus needs only output gradients) said nothing
    a user could act on."""
    quick = ["trainer.max_epochs=1", "+trainer.limit_train_batches=3", "test=false"]
    train(compose_config("train.yaml", [*DP, *quick, "logger=none"], tmp_path))
    said = [str(w.message) for w in recwarn]
    assert not [m for m in said if "Optimal order" in m or "Full backward hook" in m], said


def test_batchnorm_is_one_clear_message(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["callbacks=[default,dp]", "trainer.max_epochs=1"], tmp_path)
    with pytest.raises(
        UserInputError, match="BatchNorm1d layers mix the samples.*batch_norm=false"
    ):
        train(cfg)
