"""Damped sinusoids: a generated 1-D sequence regression set for the 1-D CNN."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from src.data.regression_datamodule import RegressionDataModule

TARGETS = ["frequency", "damping"]


def damped_sinusoids(
    count: int,
    length: int,
    frequency_range: Sequence[float],
    damping_range: Sequence[float],
    amplitude_range: Sequence[float],
    noise_std: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` signals ``a * exp(-d t) * sin(2 pi f t + phase) + noise`` sampled at
    ``length`` points of t in [0, 1), and their (f, d). Amplitude and phase are
    random nuisances, so the targets must be read from the signal's shape."""
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(*frequency_range, size=(count, 1))
    damping = rng.uniform(*damping_range, size=(count, 1))
    amplitude = rng.uniform(*amplitude_range, size=(count, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(count, 1))
    t = np.arange(length) / length
    signals = amplitude * np.exp(-damping * t) * np.sin(2 * np.pi * frequency * t + phase)
    signals += rng.normal(0.0, noise_std, size=signals.shape)
    return signals.astype(np.float32), np.hstack([frequency, damping]).astype(np.float32)


class SignalsDataModule(RegressionDataModule):
    """Damped sinusoids (one channel of ``length`` samples) with their frequency and
    damping as the targets, generated in memory from ``generation_seed``: the same
    settings always give the same data, and nothing is written to disk.

    Args:
        num_samples: signals generated, split by ``train_val_test_split``.
        length: samples per signal (t runs over [0, 1)).
        frequency_range: frequencies, in cycles per signal, drawn uniformly.
        damping_range: decay rates (1 / signal length) drawn uniformly.
        amplitude_range: initial amplitudes drawn uniformly (a nuisance).
        noise_std: standard deviation of the added white noise.
        generation_seed: seed of the generator.
        train_val_test_split, batch_size, shared: see ``InMemoryDataModule``.
    """

    def __init__(
        self,
        num_samples: int = 5000,
        length: int = 128,
        frequency_range: Sequence[float] = (2.0, 20.0),
        damping_range: Sequence[float] = (0.5, 5.0),
        amplitude_range: Sequence[float] = (0.5, 1.5),
        noise_std: float = 0.1,
        generation_seed: int = 0,
        train_val_test_split: Sequence[float] = (0.8, 0.1, 0.1),
        batch_size: int = 64,
        **shared: Any,
    ) -> None:
        super().__init__(train_val_test_split=train_val_test_split, batch_size=batch_size, **shared)
        self.generation = {
            "count": num_samples,
            "length": length,
            "frequency_range": tuple(frequency_range),
            "damping_range": tuple(damping_range),
            "amplitude_range": tuple(amplitude_range),
            "noise_std": noise_std,
            "seed": generation_seed,
        }

    @property
    def feature_names(self) -> list[str]:
        length = self.generation["length"]
        return [f"t{i:0{len(str(length - 1))}d}" for i in range(length)]

    @property
    def target_names(self) -> list[str]:
        return list(TARGETS)

    def load_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        signals, targets = damped_sinusoids(**self.generation)
        return torch.from_numpy(signals).unsqueeze(1), torch.from_numpy(targets)
