"""How much of the targets a linear model explains: a yardstick for every regression run."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from lightning import Callback, LightningModule, Trainer

from src.data.regression_datamodule import RegressionDataModule
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


def snr_db(r2: float) -> float:
    """Signal-to-noise ratio, in dB, of a fit that explains the share ``r2`` of the
    variance; ``r2`` is clipped to [1e-6, 1 - 1e-6] so the ratio stays finite (+-60 dB)."""
    r2 = min(max(r2, 1e-6), 1 - 1e-6)
    return 10 * math.log10(r2 / (1 - r2))


def ridge_r2(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """Leave-one-out R² per target of ridge regression, its penalty chosen per target
    among ``alphas`` (scikit-learn's RidgeCV: exact leave-one-out at the cost of one fit)."""
    from sklearn.linear_model import RidgeCV

    ridge = RidgeCV(alphas=alphas, scoring="r2", alpha_per_target=True).fit(x, y)
    return np.atleast_1d(ridge.best_score_)


class RidgeSNR(Callback):
    """At the start of training, fits ``RidgeCV`` (leave-one-out) on the training
    split: its R² is the share of the target variance the features explain
    linearly, and ``10 log10(R² / (1 - R²))`` the SNR in dB.

    A model that does not beat it has learned nothing a linear fit could not;
    one far below it is broken. Logs ``data/ridge_r2`` and ``data/snr_db``
    (means over the targets, and per target as ``data/<target>/ridge_r2``) and
    prints them. Sequences enter flattened, one feature per sample point.

    Args:
        alphas: the ridge penalties to choose from.
    """

    def __init__(self, alphas: Sequence[float] = tuple(np.logspace(-3, 3, 13))) -> None:
        self.alphas = [float(alpha) for alpha in alphas]

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        datamodule = trainer.datamodule
        if not isinstance(datamodule, RegressionDataModule):
            raise UserInputError(
                f"callbacks.ridge_snr needs a regression data module (tabular, diabetes, "
                f"signals), not {type(datamodule).__name__}: remove it from the callbacks."
            )
        x, y = datamodule.splits["train"]
        r2 = ridge_r2(x.flatten(1).double().numpy(), y.double().numpy(), self.alphas)
        values = {"data/ridge_r2": float(r2.mean()), "data/snr_db": snr_db(float(r2.mean()))}
        if len(r2) > 1:
            for name, value in zip(datamodule.target_names, r2, strict=True):
                values[f"data/{name}/ridge_r2"] = float(value)
                values[f"data/{name}/snr_db"] = snr_db(float(value))
        for key, value in values.items():
            pl_module.log(key, value, sync_dist=True)
        log.info(
            "Linear yardstick (RidgeCV, leave-one-out, training split): "
            + ", ".join(f"{key}={value:.3f}" for key, value in values.items())
        )
